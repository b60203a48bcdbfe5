"""Class-conditional DDPM pipeline for Fashion-MNIST with classifier-free guidance.

This file is deliberately self-contained (it imports only torch, numpy and diffusers): ``save_pretrained`` copies it
next to the weights so that ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` can rebuild the
pipeline in a process that never installed this package.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import torch
from diffusers import DDPMScheduler, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor

logger = logging.get_logger(__name__)

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Extra spellings users type for the Fashion-MNIST classes (keys are normalised, see `_normalise_label`).
FASHION_MNIST_ALIASES = {
    "tshirt": 0, "top": 0, "tee": 0, "teeshirt": 0,
    "trousers": 1, "pants": 1, "jeans": 1,
    "sweater": 2, "jumper": 2,
    "jacket": 4,
    "sandals": 5,
    "sneakers": 7, "trainer": 7, "trainers": 7,
    "handbag": 8, "purse": 8,
    "ankleboots": 9, "boot": 9, "boots": 9,
}

# 100 training steps, as in the seed notebook. The cosine schedule ("squaredcos_cap_v2", Nichol & Dhariwal 2021) is
# used because diffusers' default linear betas (1e-4..0.02) were designed for 1000 steps: with 100 they stop at
# alpha_bar_T ~= 0.36, so training never sees pure noise and sampling from N(0, I) starts off-distribution. The cosine
# schedule ends at alpha_bar_T ~= 2.4e-7 (tests assert <= 1e-3) and spreads the noise levels evenly in log-SNR.
# v-prediction (Salimans & Ho 2022): at t = T - 1 (alpha_bar = 2.4e-7) a noise-prediction model's x0 estimate multiplies
# its error by ~2000 and every fast sampler collapses; a v-model samples as well in 10 UniPC steps as in 100 DDPM steps
# (docs/results.md, "epsilon vs v").
DEFAULT_SCHEDULER_CONFIG = {"num_train_timesteps": 100, "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
                            "timestep_spacing": "trailing", "prediction_type": "v_prediction"}

# The recipe's U-Net for 1x28x28 images (configs/fashion_mnist.yaml, the default model): 28 -> 14 -> 7 through the three
# down blocks, self-attention at 7x7 (free on a CPU there: 49 positions), skip connections in the up path, sinusoidal
# time embedding, and a learned class embedding with one extra row (the null class for guidance). 6.5 M parameters;
# configs/cpu.yaml halves the widths.
DEFAULT_UNET_CONFIG = {
    "sample_size": 28,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": (64, 128, 128),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "layers_per_block": 2,
    "attention_head_dim": 32,
    "norm_num_groups": 32,
    "time_embedding_type": "positional",
}

# Fallback for pipelines built without a measured value; saved models store theirs in model_index.json
# (`default_guidance_scale`), chosen by a guidance sweep on that model and its saved sampler.
DEFAULT_GUIDANCE_SCALE = 2.0
OUTPUT_TYPES = ("pil", "np", "pt")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_guidance_scale(guidance_scale, name: str = "guidance_scale"):
    """Raises ValueError unless `guidance_scale` is a finite number >= 0."""
    if not _is_number(guidance_scale) or not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0 = unconditional, 1 = no guidance), got {guidance_scale!r}")


def check_steps(num_inference_steps, max_steps: int | None = None, name: str = "num_inference_steps"):
    """Raises ValueError unless `num_inference_steps` is an int in 1..max_steps (the scheduler's training steps)."""
    upper = f"1..{max_steps} (the scheduler's training steps)" if max_steps else ">= 1"
    if (isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1
            or (max_steps and num_inference_steps > max_steps)):
        raise ValueError(f"{name} must be an int in {upper}, got {num_inference_steps!r}")


def check_timesteps(timesteps, num_train_timesteps: int, name: str = "timesteps"):
    """Raises ValueError unless `timesteps` is a non-empty list of ints strictly decreasing within 0..T-1."""
    ok = isinstance(timesteps, (list, tuple)) and len(timesteps) >= 1 and all(
        isinstance(t, int) and not isinstance(t, bool) for t in timesteps)
    if not (ok and all(a > b for a, b in zip(timesteps, timesteps[1:])) and 0 <= timesteps[-1]
            and timesteps[0] <= num_train_timesteps - 1):
        raise ValueError(f"{name} must be a list of ints strictly decreasing within 0..{num_train_timesteps - 1} (the "
                         f"training timesteps, noisiest first), got {timesteps!r}")


def takes_timesteps(scheduler) -> bool:
    """Whether the scheduler's `set_timesteps` accepts a list of timesteps (DDPM, DPM-Solver, Euler; not UniPC)."""
    return "timesteps" in inspect.signature(scheduler.set_timesteps).parameters


def is_ddim(scheduler) -> bool:
    """Whether `scheduler` takes DDIM steps to its timestep list (DPM-Solver++ of order 1: the same update)."""
    return type(scheduler).__name__ == "DPMSolverMultistepScheduler" and scheduler.config.get("solver_order") == 1


def check_guidance_interval(interval, name: str = "guidance_interval"):
    """Raises ValueError unless `interval` is (low, high) with 0 <= low < high <= 1."""
    ok = isinstance(interval, (list, tuple)) and len(interval) == 2
    low, high = (interval if ok else (None, None))
    if not (ok and all(_is_number(v) for v in (low, high)) and 0 <= low < high <= 1):
        raise ValueError(f"{name} must be (low, high) with 0 <= low < high <= 1 (fractions of the noise schedule, "
                         f"1 = pure noise; (0, 1) guides every step), got {interval!r}")


def check_guidance_rescale(guidance_rescale, name: str = "guidance_rescale"):
    """Raises ValueError unless `guidance_rescale` is a number in [0, 1]."""
    if not _is_number(guidance_rescale) or not 0 <= guidance_rescale <= 1:
        raise ValueError(f"{name} must be a number in [0, 1] (0 = off), got {guidance_rescale!r}")


EVERY_STEP = (0.0, 1.0)  # the guidance interval that guides at every noise level
# The sampling arguments of a call, as `resolve_sampling` returns them and `check_sampling` reads them.
SAMPLING_ARGUMENTS = ("num_inference_steps", "timesteps", "guidance_scale", "guidance_interval", "guidance_rescale",
                      "style_guidance_scale", "guide_scale")


def argument_names(names: dict | None = None) -> dict[str, str]:
    """How error messages name each sampling argument: its own name unless `names` (the caller's spelling, e.g.
    {"guidance_scale": "config key 'sample_guidance_scale'"}) says otherwise. "scheduler" names the sampler in use and
    "timestep samplers" the ones that take a timestep list."""
    return {**{key: key for key in SAMPLING_ARGUMENTS}, "scheduler": "this scheduler",
            "timestep samplers": "DDPM, DPM-Solver++, Euler", **(names or {})}


def check_sampling_values(sampling: dict, max_steps: int | None = None, takes_timesteps: bool = True,
                          names: dict | None = None):
    """Raises ValueError naming the first bad value of `sampling` (the keys of `SAMPLING_ARGUMENTS`) and what is
    accepted: the checks that need no model (`FashionDDPMPipeline.check_sampling` adds a model's own).

    Args:
        max_steps: the training steps, upper bound of the steps and the timesteps (None: no bound).
        takes_timesteps: whether the sampler in use takes a timestep list.
        names: see `argument_names`.
    """
    name = argument_names(names)
    steps, timesteps, rescale = sampling["num_inference_steps"], sampling["timesteps"], sampling["guidance_rescale"]
    check_steps(steps, max_steps, name["num_inference_steps"])
    check_guidance_scale(sampling["guidance_scale"], name["guidance_scale"])
    check_guidance_interval(sampling["guidance_interval"], name["guidance_interval"])
    check_guidance_rescale(rescale, name["guidance_rescale"])
    if timesteps is not None:
        check_timesteps(timesteps, max_steps or 10**9, name["timesteps"])
        if len(timesteps) != steps:
            raise ValueError(f"{name['num_inference_steps']} {steps} and the {len(timesteps)} {name['timesteps']} "
                             f"{list(timesteps)} disagree; give one of them")
        if not takes_timesteps:
            raise ValueError(f"{name['timesteps']} {list(timesteps)} need a sampler that takes a timestep list "
                             f"({name['timestep samplers']}); {name['scheduler']} does not")
    if sampling.get("guide_scale") is not None:
        check_guidance_scale(sampling["guide_scale"], name["guide_scale"])
    if sampling["style_guidance_scale"] is not None:
        check_guidance_scale(sampling["style_guidance_scale"], name["style_guidance_scale"])


def rescaled(guided: torch.Tensor, conditional: torch.Tensor, guidance_rescale: float) -> torch.Tensor:
    """The guided output pulled towards the conditional one's per-image standard deviation by `guidance_rescale` (Lin
    et al. 2023, section 3.4); with style guidance the conditional output is the class-with-style one. Written here
    rather than imported: diffusers keeps `rescale_noise_cfg` in its Stable Diffusion module, whose import pulls in
    transformers, and this file must stay light and self-contained."""
    if not guidance_rescale > 0:
        return guided
    dims = list(range(1, guided.ndim))
    matched = guided * (conditional.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return guidance_rescale * matched + (1 - guidance_rescale) * guided


def label_names(id2label: dict | None = None, class_names: list[str] | None = None) -> list[str]:
    """The class names by id from `id2label` ({"0": name, ...}; JSON keys are strings) or a `class_names` list (folders
    saved before id2label); the ten Fashion-MNIST classes when neither is given.

    Raises:
        ValueError: ids that are not 0..n-1, or both given and disagreeing.
    """
    names = list(class_names) if class_names is not None else None
    if id2label is not None:
        try:
            by_id = {int(k): name for k, name in id2label.items()}
        except (TypeError, ValueError, AttributeError):
            by_id = {}
        if not by_id or len(by_id) != len(id2label) or sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"id2label must map the ids 0..n-1 (as strings or ints) to class names, got {id2label!r}")
        from_ids = [by_id[i] for i in range(len(by_id))]
        if names is not None and names != from_ids:
            raise ValueError(f"class_names {names} and id2label {from_ids} disagree; give one of them")
        names = from_ids
    return names if names is not None else list(FASHION_MNIST_CLASSES)


def _normalise_label(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def trailing_timesteps(num_train_timesteps: int, num_inference_steps: int) -> list[int]:
    """"trailing" spacing (Lin et al. 2023, table 2): round(T - i·T/n) - 1 for i < n, from T - 1 down, in exact
    arithmetic. diffusers computes it with a float `np.arange(T, 0, -T/n)`, which for T = 100 and n in
    {29, 31, 58, 62, 97} yields n + 1 timesteps, the last one -1 (an index that wraps to the noisiest level)."""
    T, n = num_train_timesteps, num_inference_steps
    return [T - round(Fraction(i * T, n)) - 1 for i in range(n)]


def set_timesteps(scheduler, num_inference_steps: int, device=None, timesteps: list[int] | None = None):
    """`scheduler.set_timesteps`, made exact: every step count starts at t = T - 1 and walks down T-1 > ... > 0; or
    exactly `timesteps` (checked by the caller) on a scheduler that `takes_timesteps`.

    Schedulers that accept a timestep list (DDPM, DPM-Solver, Euler) get `trailing_timesteps`. The others (UniPC,
    Euler-ancestral) compute their own; when that goes wrong (diffusers' float "trailing" for n in
    {29, 31, 58, 62, 97}, its "linspace" repeating a timestep at n = T or starting at t = 0 for n = 1), the other of
    the two spacings, which is right for those n, is used for this call. Anything still wrong is named in a warning.
    """
    T = scheduler.config.num_train_timesteps
    if timesteps is not None:
        scheduler.set_timesteps(timesteps=list(timesteps), device=device)
        return
    spacing = scheduler.config.get("timestep_spacing")
    if spacing == "trailing" and takes_timesteps(scheduler):
        scheduler.set_timesteps(timesteps=trailing_timesteps(T, num_inference_steps), device=device)
        return
    scheduler.set_timesteps(num_inference_steps, device=device)
    if not _walks_down(scheduler.timesteps, num_inference_steps, T) and spacing in ("trailing", "linspace"):
        scheduler.register_to_config(timestep_spacing="linspace" if spacing == "trailing" else "trailing")
        try:
            scheduler.set_timesteps(num_inference_steps, device=device)
        finally:
            scheduler.register_to_config(timestep_spacing=spacing)
    name = type(scheduler).__name__
    if not _walks_down(scheduler.timesteps, num_inference_steps, T):
        logger.warning(f"{name} made the timesteps {[int(t) for t in scheduler.timesteps][:6]}... for "
                       f"num_inference_steps={num_inference_steps} (expected {num_inference_steps} strictly decreasing "
                       f"from {T - 1}); pipeline.schedulers.use_sampler(pipe, name) configures an exact sampler")
    elif name == "DDIMScheduler" and T % num_inference_steps:
        logger.warning(f"DDIMScheduler steps to t - {T // num_inference_steps}, not to its next timestep, unless "
                       f"num_inference_steps divides {T}; got {num_inference_steps}. The sampler named 'ddim' in "
                       "pipeline.schedulers (DPM-Solver++ of order 1, the same update) is exact for any count")


def _walks_down(timesteps, n: int, T: int) -> bool:
    ts = [float(t) for t in timesteps]
    return len(ts) == n and ts[0] == T - 1 and all(a > b for a, b in zip(ts, ts[1:]))


def _plain(value):
    """numpy scalars (np.int64(3), np.float32(2.0), np.str_) -> the Python int / float / str they hold."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def check_guide(guide_unet, unet, num_classes: int, default_guide_scale=None):
    """Raises ValueError unless `guide_unet` (None: no guide) is a class-only U-Net for the same classes and images as
    `unet`, and `default_guide_scale` a number >= 0 given only with a guide."""
    if guide_unet is None:
        if default_guide_scale is not None:
            raise ValueError(f"default_guide_scale {default_guide_scale!r} needs a guide_unet")
        return
    config = guide_unet.config
    if config.get("class_embed_type") == "identity" or config.get("num_class_embeds") != num_classes + 1:
        raise ValueError(f"guide_unet must be a class-only U-Net with num_class_embeds = {num_classes + 1} (the classes "
                         f"plus the null class), got class_embed_type={config.get('class_embed_type')!r}, "
                         f"num_class_embeds={config.get('num_class_embeds')!r}")
    for key in ("sample_size", "in_channels", "out_channels"):
        if config.get(key) != unet.config.get(key):
            raise ValueError(f"guide_unet has {key}={config.get(key)!r}, the unet {unet.config.get(key)!r}; a guide "
                             "must denoise the same images")
    if default_guide_scale is not None:
        check_guidance_scale(default_guide_scale, "default_guide_scale")


PIPELINE_CLASS_NAMES = ("FashionDDPMPipeline", "FashionDDPMStudentPipeline")  # the classes of this file a folder names


def saved_student(folder: str | os.PathLike) -> bool:
    """Whether the saved pipeline `folder` holds a few-step student: its condition encoder's config has a guidance
    range. (A student saved before `FashionDDPMStudentPipeline` existed names `FashionDDPMPipeline` in model_index.json
    and `FashionConditionEncoder` for its encoder; the config keys are what mark it.)"""
    path = os.path.join(folder, "condition_encoder", "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("guidance_range") is not None
    except (OSError, ValueError, AttributeError):  # none or broken: loading names what is wrong
        return False


class FashionDDPMPipeline(DiffusionPipeline):
    r"""Class-conditional image generation with a DDPM U-Net and classifier-free guidance.

    The U-Net's class embedding has ``len(class_names) + 1`` rows; the last id is the *null class* that the model
    was trained on with label dropout, so the same network gives the unconditional prediction.

    A style model adds a `condition_encoder` (`condition_encoder.py`, saved beside its weights): it turns the class and
    a style request into the embedding a U-Net with ``class_embed_type="identity"`` adds to its time embedding.

    A distilled few-step student is `FashionDDPMStudentPipeline`, this pipeline with one U-Net pass per step.

    A `guide_unet` (optional) is a worse model of the same task (smaller or less trained, class-only, same noise
    schedule): with `guide_scale` a > 0 every step adds a * (out(x, c) - guide(x, c)), guiding the model away from
    its own worse version (autoguidance, Karras et al. 2024), beside classifier-free guidance on its interval.

    Args:
        unet ([`UNet2DModel`]): noise-prediction U-Net with ``num_class_embeds == len(class_names) + 1`` (class-only),
            or ``class_embed_type="identity"`` (fed by the condition encoder).
        scheduler ([`SchedulerMixin`]): any diffusers noise scheduler; defaults to a 100-step cosine `DDPMScheduler`.
        class_names (`list[str]`, *optional*): label names, index = class id (folders saved before `id2label`).
        condition_encoder (*optional*): class (+ style) -> class embedding; None for a class-only model.
        guide_unet ([`UNet2DModel`], *optional*): the autoguidance guide, a class-only U-Net with the same classes.
        id2label (`dict[str, str]`, *optional*): {"0": name, ...}, as diffusers' DiT pipeline keeps its labels; stored
            in `model_index.json`. Not a list there: the Hub download path reads every list-valued key whose first item
            is a string as a [module, class] component. Defaults to the ten Fashion-MNIST classes.
    """

    model_cpu_offload_seq = "condition_encoder->unet->guide_unet"
    _optional_components = ["condition_encoder", "guide_unet"]
    _callback_tensor_inputs = ["latents"]
    pipeline_file_name = "pipeline_fashion_ddpm"
    condition_encoder_file_name = "condition_encoder"
    condition_encoder_class_name = "FashionConditionEncoder"  # the encoder class this pipeline takes
    is_distilled = False  # a few-step student (FashionDDPMStudentPipeline)

    def __init__(self, unet: UNet2DModel, scheduler, class_names: list[str] | None = None,
                 default_guidance_scale: float = DEFAULT_GUIDANCE_SCALE, default_num_inference_steps: int | None = None,
                 default_guidance_interval: list[float] | None = None, condition_encoder=None,
                 default_timesteps: list[int] | None = None, id2label: dict[str, str] | None = None,
                 default_style_guidance_scale: float | None = None, guide_unet: UNet2DModel | None = None,
                 default_guide_scale: float | None = None):
        super().__init__()
        class_names = label_names(id2label, class_names)
        if condition_encoder is not None:
            num_embeds = condition_encoder.config.num_class_embeds
            if unet.config.class_embed_type != "identity":
                raise ValueError(f"a condition_encoder needs a U-Net with class_embed_type='identity' (its embedding is "
                                 f"the encoder's output), got {unet.config.class_embed_type!r}")
        else:
            num_embeds = unet.config.num_class_embeds
        student_encoder = condition_encoder is not None and condition_encoder.config.get("guidance_range") is not None
        if student_encoder != self.is_distilled:
            raise ValueError(f"{type(self).__name__} got a {type(condition_encoder).__name__}: a few-step student's "
                             "encoder (one with a guidance_range) goes with FashionDDPMStudentPipeline, a class or style "
                             "encoder (or none) with FashionDDPMPipeline")
        if num_embeds != len(class_names) + 1:
            raise ValueError(
                f"num_class_embeds={num_embeds} must equal len(class_names) + 1 = {len(class_names) + 1} "
                "(one row per class plus the null class used for classifier-free guidance)."
            )
        if default_guidance_interval is not None:
            check_guidance_interval(default_guidance_interval, "default_guidance_interval")
            default_guidance_interval = [float(v) for v in default_guidance_interval]
        if default_timesteps is not None:
            default_timesteps = [int(_plain(t)) for t in default_timesteps]
            check_timesteps(default_timesteps, scheduler.config.num_train_timesteps, "default_timesteps")
        check_guide(guide_unet, unet, len(class_names), default_guide_scale)
        self.register_modules(unet=unet, scheduler=scheduler, condition_encoder=condition_encoder, guide_unet=guide_unet)
        # Stored in model_index.json: each saved model carries the guidance (scale and noise-level interval) and the
        # step count (or the timesteps themselves) measured best for it.
        self.register_to_config(id2label={str(i): name for i, name in enumerate(class_names)},
                                default_guidance_scale=float(default_guidance_scale),
                                default_num_inference_steps=default_num_inference_steps,
                                default_guidance_interval=default_guidance_interval,
                                default_timesteps=default_timesteps)
        if default_style_guidance_scale is not None:  # only a style model measured with it carries the key
            check_guidance_scale(default_style_guidance_scale, "default_style_guidance_scale")
            self.register_to_config(default_style_guidance_scale=float(default_style_guidance_scale))
        if default_guide_scale is not None:  # only a model shipped with its guide carries the key
            self.register_to_config(default_guide_scale=float(default_guide_scale))

    # ------------------------------------------------------------------ construction and saving
    @classmethod
    def from_config_dict(
        cls, unet: dict | None = None, scheduler: dict | None = None, class_names: list[str] | None = None,
        condition_encoder=None,
    ) -> FashionDDPMPipeline:
        """Builds a freshly initialised pipeline; training and tests share this one constructor.

        Args:
            unet: overrides of `DEFAULT_UNET_CONFIG` (any `UNet2DModel` argument).
            scheduler: overrides of `DEFAULT_SCHEDULER_CONFIG` (any `DDPMScheduler` argument).
            class_names: label names; defaults to the ten Fashion-MNIST classes.
            condition_encoder: a built condition encoder (a style model: the U-Net takes its embedding), or None.
        """
        class_names = list(class_names) if class_names is not None else list(FASHION_MNIST_CLASSES)
        embedding = ({"class_embed_type": "identity", "num_class_embeds": None} if condition_encoder is not None
                     else {"num_class_embeds": len(class_names) + 1})
        unet_config = {**DEFAULT_UNET_CONFIG, **(unet or {}), **embedding}
        for key in ("block_out_channels", "down_block_types", "up_block_types"):
            unet_config[key] = tuple(unet_config[key])
        scheduler_config = {**DEFAULT_SCHEDULER_CONFIG, **(scheduler or {})}
        return cls(UNet2DModel(**unet_config), DDPMScheduler(**scheduler_config), class_names=class_names,
                   condition_encoder=condition_encoder)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Saves safetensors weights, `model_index.json` and this code file, so that
        `DiffusionPipeline.from_pretrained(save_directory, trust_remote_code=True)` rebuilds this pipeline."""
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(save_directory, **kwargs)
        shutil.copyfile(inspect.getfile(type(self)), os.path.join(save_directory, f"{self.pipeline_file_name}.py"))
        index_path = os.path.join(save_directory, "model_index.json")
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        # A [module, class] pair tells DiffusionPipeline to import the class from the .py file in the folder.
        index["_class_name"] = [self.pipeline_file_name, type(self).__name__]
        encoder = getattr(self, "condition_encoder", None)
        if encoder is not None:  # a custom component: its code in its own folder, named [file, class] as diffusers loads it
            folder = os.path.join(save_directory, "condition_encoder")
            shutil.copyfile(inspect.getfile(type(encoder)), os.path.join(folder, f"{self.condition_encoder_file_name}.py"))
            index["condition_encoder"] = [self.condition_encoder_file_name, type(encoder).__name__]
        with open(index_path, "w", encoding="utf-8") as f:
            json.dump(index, f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`DiffusionPipeline.from_pretrained`, as the class the folder holds: a saved few-step student loads as
        `FashionDDPMStudentPipeline` whichever of the two classes is asked, also one saved before that class existed."""
        folder = os.fspath(pretrained_model_name_or_path)
        if cls is FashionDDPMPipeline and os.path.isdir(folder) and saved_student(folder):
            return FashionDDPMStudentPipeline.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def load_config(cls, *args, **kwargs):
        # Saved folders name this class as [file, class] so DiffusionPipeline finds the code file; when the caller
        # already holds the class (FashionDDPMPipeline.from_pretrained), use it directly and run no remote code. A
        # student saved before FashionDDPMStudentPipeline existed names FashionDDPMPipeline: the caller's class wins.
        result = super().load_config(*args, **kwargs)
        config = result[0] if isinstance(result, tuple) else result
        folder = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        if isinstance(folder, (str, os.PathLike)) and os.path.isdir(folder) and saved_student(folder) != cls.is_distilled:
            held, right = (("a class or style model", "FashionDDPMPipeline") if cls.is_distilled
                           else ("a few-step student", "FashionDDPMStudentPipeline"))
            raise ValueError(f"{folder} holds {held}; load it with {right}.from_pretrained or "
                             "pipeline.models.load_pipeline")
        saved = config.get("_class_name")
        if isinstance(saved, (list, tuple)) and saved[0] == cls.pipeline_file_name and saved[1] in PIPELINE_CLASS_NAMES:
            config["_class_name"] = cls.__name__
        # Likewise the condition encoder: where this file is a module of an installed package that has the encoder's
        # module beside it, that module's class for this pipeline is used; otherwise diffusers loads the folder's copy
        # (trust_remote_code).
        encoder = config.get("condition_encoder")
        package = cls.__module__.rpartition(".")[0]
        if isinstance(encoder, (list, tuple)) and encoder[0] == cls.condition_encoder_file_name and package:
            module = f"{package}.{cls.condition_encoder_file_name}"
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)  # the package's own module (diffusers loads only imported ones)
                config["condition_encoder"] = [module, cls.condition_encoder_class_name]
        return result

    @property
    def style_attributes(self) -> list[str]:
        """The style attributes this model takes (`style=` of `__call__`); empty for a class-only model."""
        encoder = getattr(self, "condition_encoder", None)
        return encoder.style_attributes if encoder is not None else []

    # ------------------------------------------------------------------ labels
    @property
    def class_names(self) -> list[str]:
        return label_names(self.config.id2label)

    @property
    def null_class_id(self) -> int:
        return len(self.config.id2label)

    def class_id(self, label: int | str) -> int:
        """Maps a class id or a (case-insensitive, alias-tolerant) class name to its id."""
        names = self.class_names
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise ValueError(f"class label {label!r} must be an int id or a class name; valid names: {names}")
        if isinstance(label, int):
            if not 0 <= label < len(names):
                raise ValueError(f"class id {label} is out of range: valid ids are 0..{len(names) - 1} ({names})")
            return label
        lookup = {_normalise_label(n): i for i, n in enumerate(names)}
        if names == list(FASHION_MNIST_CLASSES):
            lookup = {**FASHION_MNIST_ALIASES, **lookup}
        key = _normalise_label(label)
        if key in lookup:
            return lookup[key]
        raise ValueError(f"unknown class name {label!r}; valid names: {names} (case-insensitive; ids 0..{len(names) - 1})")

    def resolve_class_ids(self, class_labels=None) -> list[int]:
        """Class ids for `class_labels`: an id, a name, a list / tuple / numpy array / tensor of them, or None (all).

        Raises:
            ValueError: naming the bad value and the accepted ids and names.
        """
        if class_labels is None:
            return list(range(len(self.class_names)))
        if isinstance(class_labels, torch.Tensor):
            if class_labels.is_floating_point() or class_labels.ndim > 1:
                raise ValueError(f"class_labels tensor must be a 0-d or 1-d integer tensor, got {class_labels!r}")
            class_labels = class_labels.reshape(-1).tolist()
        elif hasattr(class_labels, "tolist") and hasattr(class_labels, "dtype"):  # numpy array or scalar
            if class_labels.dtype.kind == "f" or getattr(class_labels, "ndim", 0) > 1:
                raise ValueError(f"class_labels array must hold integer ids or names (0-d or 1-d), got {class_labels!r}")
            class_labels = class_labels.tolist()
        if not isinstance(class_labels, (list, tuple)):
            class_labels = [class_labels]
        if not class_labels:
            raise ValueError(f"class_labels is empty; give ids 0..{len(self.class_names) - 1} or names {self.class_names}")
        return [self.class_id(_plain(label)) for label in class_labels]

    def parse_style(self, style) -> dict[str, float]:
        """{attribute: percentile} of a style request; ValueError naming the bad value (also for a class-only model)."""
        encoder = getattr(self, "condition_encoder", None)
        if encoder is None:
            if style is not None:
                raise ValueError(f"this model takes no style (a class-only model); got style={style!r}")
            return {}
        return encoder.parse_style(style)


    # ------------------------------------------------------------------ sampling arguments: defaults and checks
    def resolve_sampling(self, num_inference_steps=None, timesteps=None, guidance_scale=None, guidance_interval=None,
                         guidance_rescale=None, style_guidance_scale=None, model_sampler: bool = True,
                         guide_scale=None) -> dict:
        """The sampling arguments of a call (`SAMPLING_ARGUMENTS`): those given, this model's saved defaults
        (model_index.json) for the rest. The one place the defaults are worked out: `__call__` and
        `SamplingSettings.resolve` both call it. Nothing is checked here (`check_sampling` does); numpy and torch
        scalars become the Python numbers they hold.

        The model's own timesteps (`default_timesteps`) are the default only where neither steps nor timesteps are given
        and the call samples with the model's own sampler (`model_sampler`). Steps default to the count of the
        timesteps, else `default_num_inference_steps`, else the scheduler's training steps; the guidance interval to
        `default_guidance_interval`, else every step; the style guidance to `default_style_guidance_scale`; the
        autoguidance weight to `default_guide_scale` (None: no guide).
        """
        config = self.config
        if timesteps is None and num_inference_steps is None and model_sampler:
            timesteps = config.get("default_timesteps")
        timesteps = timesteps.tolist() if hasattr(timesteps, "tolist") else timesteps  # numpy array or tensor
        if isinstance(timesteps, (list, tuple)):
            timesteps = [_plain(t) for t in timesteps]
            if num_inference_steps is None and timesteps:
                num_inference_steps = len(timesteps)
        if num_inference_steps is None:
            num_inference_steps = config.get("default_num_inference_steps") or self.scheduler.config.num_train_timesteps
        if guidance_scale is None:
            guidance_scale = config.get("default_guidance_scale")
        if guidance_interval is None:
            guidance_interval = config.get("default_guidance_interval") or EVERY_STEP
        if isinstance(guidance_interval, (list, tuple)):
            guidance_interval = tuple(_plain(v) for v in guidance_interval)
        if style_guidance_scale is None:
            style_guidance_scale = config.get("default_style_guidance_scale")
        if guide_scale is None:
            guide_scale = config.get("default_guide_scale")
        return {"num_inference_steps": _plain(num_inference_steps), "timesteps": timesteps,
                "guidance_scale": _plain(DEFAULT_GUIDANCE_SCALE if guidance_scale is None else guidance_scale),
                "guidance_interval": guidance_interval,
                "guidance_rescale": _plain(0.0 if guidance_rescale is None else guidance_rescale),
                "style_guidance_scale": _plain(style_guidance_scale), "guide_scale": _plain(guide_scale)}

    def check_sampling(self, sampling: dict, scheduler=None, names: dict | None = None):
        """Raises ValueError naming the first bad sampling argument (`resolve_sampling`'s dict) for this model and what
        is accepted: `check_sampling_values`, and style guidance only for a style model. `scheduler`: the one the call
        will sample with (default: the pipeline's own); `names`: see `argument_names`."""
        scheduler = self.scheduler if scheduler is None else scheduler
        names = argument_names({"scheduler": type(scheduler).__name__, **(names or {})})
        check_sampling_values(sampling, scheduler.config.num_train_timesteps, takes_timesteps(scheduler), names)
        if sampling["style_guidance_scale"] is not None and not self.style_attributes:
            raise ValueError(f"{names['style_guidance_scale']} needs a style model (a condition encoder with style "
                             f"attributes); got {sampling['style_guidance_scale']!r}")
        if sampling.get("guide_scale") and getattr(self, "guide_unet", None) is None:
            raise ValueError(f"{names['guide_scale']} needs a model with a guide (a guide_unet component; "
                             f"`pipeline.models.with_guide`), got {sampling['guide_scale']!r}")

    def check_inputs(self, sampling: dict, num_images_per_label, num_labels: int, output_type: str, generator,
                     callback_on_step_end_tensor_inputs):
        """Every check of a call, before any work: the sampling arguments (`check_sampling`) and the call's own."""
        if isinstance(num_images_per_label, bool) or not isinstance(num_images_per_label, int) or num_images_per_label < 1:
            raise ValueError(f"num_images_per_label must be an int >= 1, got {num_images_per_label!r}")
        self.check_sampling(sampling)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type {output_type!r} is not supported; use one of {list(OUTPUT_TYPES)}")
        batch = num_labels * num_images_per_label
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"got a list of {len(generator)} generators for {batch} images (len(class_labels) * "
                             "num_images_per_label); pass one generator or exactly one per image")
        bad_inputs = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if bad_inputs:
            raise ValueError(f"callback_on_step_end_tensor_inputs {sorted(bad_inputs)} not supported; use "
                             f"{self._callback_tensor_inputs}")

    # ------------------------------------------------------------------ sampling
    def prepare_latents(self, batch: int, generator, device, latents: torch.Tensor | None = None) -> torch.Tensor:
        """The starting noise x_T (before the scheduler's `init_noise_sigma`): drawn from `generator`, or `latents`."""
        config = self.unet.config
        shape = (batch, config.in_channels, config.sample_size, config.sample_size)
        if latents is None:
            return randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        if tuple(latents.shape) != shape:
            raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {shape}")
        return latents.to(device)

    def prepare_timesteps(self, sampling: dict, device):
        """Sets the scheduler's timesteps: exactly `sampling`'s timesteps, else its steps (`set_timesteps`)."""
        set_timesteps(self.scheduler, sampling["num_inference_steps"], device, sampling["timesteps"])

    def condition(self, class_ids: torch.Tensor, style: tuple[torch.Tensor, torch.Tensor] | None = None):
        """What the U-Net's `class_labels` receive: the class ids (class-only model) or the condition encoder's
        embedding of the classes and the style (values, given)."""
        if getattr(self, "condition_encoder", None) is None:
            return class_ids
        return self.condition_encoder(class_ids, *self.style_of(class_ids, style)).to(self.unet.dtype)

    def style_of(self, class_ids: torch.Tensor, style: tuple[torch.Tensor, torch.Tensor] | None):
        """(values, given) of the style for the encoder, the null class (guidance's unconditional half) taking none."""
        if style is None:
            return None, None
        values, given = style
        null = class_ids == self.null_class_id
        return values, given * (~null).unsqueeze(1).to(given.dtype)

    def model_output(self, latents: torch.Tensor, t, step_index: int, class_ids: torch.Tensor,
                     style: tuple[torch.Tensor, torch.Tensor] | None, sampling: dict) -> torch.Tensor:
        """The guided output of one denoising step: w outside the guidance interval (the noise level (t + 1) / T not
        in [low, high]) is 1, one U-Net pass; the style guided by its own weight only where there is guidance."""
        low, high = sampling["guidance_interval"]
        w = sampling["guidance_scale"]
        if not low <= (float(t) + 1) / self.scheduler.config.num_train_timesteps <= high:
            w = 1.0
        composed = sampling["style_guidance_scale"] if w != 1 else None
        a = sampling.get("guide_scale") or 0.0
        if not a:
            return self.guided_prediction(latents, t, class_ids, w, sampling["guidance_rescale"], style, composed)
        guided, conditional = self.guided_prediction(latents, t, class_ids, w, sampling["guidance_rescale"], style,
                                                     composed, return_conditional=True)
        return guided + a * (conditional - self.guide_prediction(latents, t, class_ids).to(conditional.dtype))

    def guide_prediction(self, latents: torch.Tensor, t, class_ids: torch.Tensor) -> torch.Tensor:
        """The guide's conditional output: a class-only model, so a style request is the main model's alone."""
        return self.guide_unet(latents.to(self.guide_unet.dtype), t, class_labels=class_ids).sample

    def guided_prediction(self, latents: torch.Tensor, t, class_ids: torch.Tensor, guidance_scale: float,
                          guidance_rescale: float = 0.0, style: tuple[torch.Tensor, torch.Tensor] | None = None,
                          style_guidance_scale: float | None = None, return_conditional: bool = False):
        """The U-Net's guided output (noise or velocity, as the scheduler's `prediction_type` says):
        out = out(x, null) + w * (out(x, c) - out(x, null)).

        w = 1 is the plain conditional model (one U-Net pass), w = 0 the unconditional one (one pass), any other w
        runs the null and conditional halves as ONE batched U-Net pass. `guidance_rescale` > 0 pulls the guided
        output's per-image standard deviation back towards the conditional one (Lin et al. 2023, section 3.4).

        With a style request and `style_guidance_scale` w_s, class and style are guided as separate terms
        (compositional guidance, Liu et al. 2022), in one batched pass of three:
        out = out(x, null) + w * (out(x, c) - out(x, null)) + w_s * (out(x, c, s) - out(x, c)).

        `return_conditional`: (guided, the conditional output out(x, c[, s])), which autoguidance compares with its guide.
        """
        if style is not None and style_guidance_scale is not None:
            guided, conditional = self.compositional_prediction(latents, t, class_ids, guidance_scale, style,
                                                                style_guidance_scale)
            guided = rescaled(guided, conditional, guidance_rescale)
            return (guided, conditional) if return_conditional else guided
        if guidance_scale == 1 or (guidance_scale == 0 and not return_conditional):
            labels = class_ids if guidance_scale == 1 else torch.full_like(class_ids, self.null_class_id)
            out = self.unet(latents, t, class_labels=self.condition(labels, style)).sample
            return (out, out) if return_conditional else out
        null = torch.full_like(class_ids, self.null_class_id)
        doubled = None if style is None else tuple(torch.cat([x, x]) for x in style)
        both = self.unet(torch.cat([latents, latents]), t,
                         class_labels=self.condition(torch.cat([null, class_ids]), doubled)).sample
        out_null, out_cond = both.chunk(2)
        guided = rescaled(out_null + guidance_scale * (out_cond - out_null), out_cond, guidance_rescale)
        return (guided, out_cond) if return_conditional else guided

    def compositional_prediction(self, latents: torch.Tensor, t, class_ids: torch.Tensor, guidance_scale: float,
                                 style: tuple[torch.Tensor, torch.Tensor], style_guidance_scale: float) -> torch.Tensor:
        """Class and style as separate guidance terms (see `guided_prediction`): the null, the class without the style
        (every attribute free, as training's style dropout shows the model) and the class with it, one pass of 3B.
        Returns (the guided output, the class-with-style output)."""
        values, given = style
        null = torch.full_like(class_ids, self.null_class_id)
        tripled = (torch.cat([values, values, values]), torch.cat([given, torch.zeros_like(given), given]))
        out = self.unet(torch.cat([latents, latents, latents]), t,
                        class_labels=self.condition(torch.cat([null, class_ids, class_ids]), tripled)).sample
        out_null, out_class, out_style = out.chunk(3)
        guided = out_null + guidance_scale * (out_class - out_null) + style_guidance_scale * (out_style - out_class)
        return guided, out_style

    @torch.no_grad()
    def __call__(
        self,
        class_labels: int | str | list[int | str] | torch.Tensor | None = None,
        num_images_per_label: int = 1,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        guidance_interval: tuple[float, float] | None = None,
        guidance_rescale: float = 0.0,
        callback_on_step_end: Callable[[FashionDDPMPipeline, int, Any, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        style: str | dict | None = None,
        timesteps: list[int] | None = None,
        style_guidance_scale: float | None = None,
        guide_scale: float | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Generates images of the requested classes.

        Args:
            class_labels (`int`, `str`, `list`, `np.ndarray` or `torch.Tensor`, *optional*):
                Class ids or names (case-insensitive; aliases such as "tshirt", "top", "ankle-boot" work). `None`
                makes one image per class.
            num_images_per_label (`int`, defaults to 1): images per entry of `class_labels`; output order is
                label-major (all images of the first label, then the next).
            guidance_scale (`float`, *optional*): classifier-free guidance weight w in
                out = out_null + w * (out_cond - out_null). 1 disables guidance, 0 samples unconditionally. Defaults
                to the model's `default_guidance_scale` (model_index.json), measured best for its saved sampler.
            num_inference_steps (`int`, *optional*): denoising steps; defaults to the model's
                `default_num_inference_steps`, else the scheduler's training steps (100).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): one generator for the batch, or one
                per image so that each image is reproducible on its own.
            latents (`torch.Tensor`, *optional*): starting noise of shape (batch, 1, 28, 28).
            output_type (`str`, defaults to "pil"): "pil" (list of `PIL.Image`), "np" (float array B×H×W×1 in
                [0, 1]) or "pt" (float tensor B×1×H×W in [0, 1]).
            return_dict (`bool`, defaults to True): return an `ImagePipelineOutput` instead of a tuple.
            guidance_interval (`(float, float)`, *optional*): guide only while the noise level (t + 1) / T lies in
                [low, high] (Kynkäänniemi et al. 2024); elsewhere w = 1 (one U-Net pass). Defaults to the model's
                `default_guidance_interval` (model_index.json; None there guides every step); (0, 1) guides every step.
            guidance_rescale (`float`, defaults to 0): guidance rescale φ of Lin et al. 2023, in [0, 1].
            callback_on_step_end (`Callable`, *optional*): called after every step as
                `callback_on_step_end(pipe, step_index, timestep, {"latents": x_t})`; may return a dict whose
                "latents" replaces x_t. This is how the reverse process is recorded step by step.
            callback_on_step_end_tensor_inputs (`list[str]`): tensors passed to the callback; only "latents".
            style (`str` or `dict`, *optional*): a style model's request, the same for every image: descriptor words
                ("wide plain"; `pipe.condition_encoder.descriptors()`) or {attribute: percentile within the class in
                [0, 1]} for attributes of `pipe.style_attributes`; attributes not given are free. None: no style.
            timesteps (`list[int]`, *optional*): the exact timesteps to denoise at, noisiest first (e.g. a searched
                few-step schedule), on a scheduler whose `set_timesteps` takes them (DDPM, DPM-Solver++); overrides
                `num_inference_steps`. Defaults to the model's `default_timesteps` (model_index.json) unless
                `num_inference_steps` is given. A distilled student (`FashionDDPMStudentPipeline`) takes only the
                schedules it was distilled for (its condition encoder's `step_schedules`; `num_inference_steps` picks
                one).
            style_guidance_scale (`float`, *optional*): a style model's style request guided by its own weight w_s,
                beside the class's w (compositional guidance, Liu et al. 2022; three U-Net halves per guided step):
                out = out_null + w * (out_class - out_null) + w_s * (out_class_style - out_class), on the same
                interval. Defaults to the model's `default_style_guidance_scale` (model_index.json); None there
                guides class and style together with w, as the style model was trained.
            guide_scale (`float`, *optional*): autoguidance weight a >= 0 for a model with a `guide_unet`: every step
                adds a * (out(x, c) - guide(x, c)) to the classifier-free guided output (one pass of the guide per
                step). Defaults to the model's `default_guide_scale` (model_index.json); None or 0: no guide.

        Returns:
            [`ImagePipelineOutput`] or `tuple`: the images, as `output_type` says.

        Examples:
            >>> pipe = FashionDDPMPipeline.from_pretrained("pretrained/fashion-ddpm-gpu")
            >>> images = pipe(class_labels=["Sneaker", "Bag"]).images
        """
        # 1. the arguments: the model's defaults for those not given, every one checked before any work
        class_ids = self.resolve_class_ids(class_labels)
        sampling = self.resolve_sampling(num_inference_steps, timesteps, guidance_scale, guidance_interval,
                                         guidance_rescale, style_guidance_scale, guide_scale=guide_scale)
        num_images_per_label = _plain(num_images_per_label)
        self.check_inputs(sampling, num_images_per_label, len(class_ids), output_type, generator,
                          callback_on_step_end_tensor_inputs)
        requested = self.parse_style(style)
        if not requested:  # no style asked for: no style term to guide by its own weight
            sampling["style_guidance_scale"] = None

        # 2. the starting noise, the labels and the style request
        batch = len(class_ids) * num_images_per_label
        device = self._execution_device
        latents = self.prepare_latents(batch, generator, device, latents)
        labels = torch.tensor(class_ids, device=device).repeat_interleave(num_images_per_label)
        style_inputs = self.condition_encoder.style_tensors(requested, batch, device) if self.style_attributes else None

        # 3. the denoising loop
        self.prepare_timesteps(sampling, device)
        latents = latents * self.scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = self.scheduler.scale_model_input(latents, t)
            model_output = self.model_output(model_input, t, i, labels, style_inputs, sampling)
            latents = self.scheduler.step(model_output, t, latents, **step_kwargs).prev_sample
            if callback_on_step_end is not None:
                callback_kwargs = {name: {"latents": latents}[name] for name in callback_on_step_end_tensor_inputs}
                latents = (callback_on_step_end(self, i, t, callback_kwargs) or {}).get("latents", latents)

        # 4. the images in [0, 1]
        images = (latents / 2 + 0.5).clamp(0, 1).float()
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)


class FashionDDPMStudentPipeline(FashionDDPMPipeline):
    r"""A distilled few-step student (pipeline/training/distill/): one U-Net pass per step imitates its teacher's
    guided steps, after Meng et al. 2023 (guidance as an input) and Frans et al. 2024 (the step's size as an input).

    Its `FashionStudentConditionEncoder` takes the guidance weight w and the noise level each step lands on beside the
    class; its config holds what the student was distilled for, and a call must ask for that: the DDIM update (sampler
    'ddim': DPMSolverMultistepScheduler of solver_order 1), one of its timestep schedules (`step_schedules`;
    `num_inference_steps` picks one), w in its `guidance_range`, its teacher's guidance interval (what w meant), no
    rescale and no style guidance. Called as `FashionDDPMPipeline`; `FashionDDPMPipeline.from_pretrained` loads a saved
    student as this class.
    """

    condition_encoder_class_name = "FashionStudentConditionEncoder"
    is_distilled = True

    def check_sampling(self, sampling: dict, scheduler=None, names: dict | None = None):
        """`FashionDDPMPipeline.check_sampling`, and what the student was distilled for (see the class); its sampler
        first: another sampler's step count is no reason to name the steps."""
        scheduler = self.scheduler if scheduler is None else scheduler
        if not is_ddim(scheduler):
            raise ValueError(f"this distilled model samples with the DDIM update it was distilled for (sampler 'ddim': "
                             f"DPMSolverMultistepScheduler of solver_order 1); got {type(scheduler).__name__}")
        if sampling["style_guidance_scale"] is not None:
            raise ValueError(f"style_guidance_scale needs a style model (a distilled student takes none), got "
                             f"{sampling['style_guidance_scale']!r}")
        super().check_sampling(sampling, scheduler, names)
        self.student_timesteps(sampling["num_inference_steps"], sampling["timesteps"])
        self.check_student_guidance(sampling)

    def student_timesteps(self, num_inference_steps: int, timesteps: list[int] | None) -> list[int]:
        """Its timesteps: `timesteps` if they are one of its schedules, else its schedule of `num_inference_steps`.

        Raises:
            ValueError: a step count or timestep list the student was not distilled for.
        """
        schedules = {int(n): list(ts) for n, ts in self.condition_encoder.config.step_schedules.items()}
        if timesteps is not None:
            if list(timesteps) not in schedules.values():
                raise ValueError(f"timesteps {list(timesteps)} are not a schedule this distilled model was trained for; "
                                 f"accepted: {sorted(schedules.values(), key=len)}")
            return list(timesteps)
        if num_inference_steps not in schedules:
            raise ValueError(f"num_inference_steps must be one of {sorted(schedules)} for this distilled model (its "
                             f"distilled schedules), got {num_inference_steps!r}")
        return schedules[num_inference_steps]

    def check_student_guidance(self, sampling: dict):
        """Raises ValueError unless the guidance is what the student was distilled for: w in its range, with the
        teacher's interval (any interval at w = 1, which guides nothing) and no rescale."""
        config = self.condition_encoder.config
        low, high = config.guidance_range
        w, interval, taught = sampling["guidance_scale"], sampling["guidance_interval"], config.guidance_interval
        if not low <= w <= high:
            raise ValueError(f"guidance_scale must be in [{low:g}, {high:g}] for this distilled model (the range it was "
                             f"distilled on), got {w!r}")
        if w != 1 and taught is not None and [float(v) for v in interval] != [float(v) for v in taught]:
            raise ValueError(f"guidance_interval must be {list(taught)} for this distilled model (its w means the "
                             f"teacher's guidance on that interval), got {list(interval)}")
        if sampling["guidance_rescale"]:
            raise ValueError(f"guidance_rescale must be 0 for this distilled model (it was distilled without), got "
                             f"{sampling['guidance_rescale']!r}")

    def prepare_timesteps(self, sampling: dict, device):
        """Sets the scheduler's timesteps to the student's schedule (`student_timesteps`)."""
        timesteps = self.student_timesteps(sampling["num_inference_steps"], sampling["timesteps"])
        set_timesteps(self.scheduler, len(timesteps), device, timesteps)

    def condition(self, class_ids: torch.Tensor, style: tuple[torch.Tensor, torch.Tensor] | None = None,
                  guidance: torch.Tensor | None = None, target: torch.Tensor | None = None):
        """The encoder's embedding of the classes, the style, the guidance weights and the target noise levels."""
        encoder_inputs = {"guidance": guidance, "target": target}
        return self.condition_encoder(class_ids, *self.style_of(class_ids, style), **encoder_inputs).to(self.unet.dtype)

    def model_output(self, latents: torch.Tensor, t, step_index: int, class_ids: torch.Tensor,
                     style: tuple[torch.Tensor, torch.Tensor] | None, sampling: dict) -> torch.Tensor:
        """One U-Net pass: w and the noise level (t + 1) / T this step lands on (0 after the last) are inputs."""
        steps, T = self.scheduler.timesteps, self.scheduler.config.num_train_timesteps
        target = (float(steps[step_index + 1]) + 1) / T if step_index + 1 < len(steps) else 0.0
        batch, device = len(class_ids), latents.device
        condition = self.condition(class_ids, style, torch.full((batch,), float(sampling["guidance_scale"]), device=device),
                                   torch.full((batch,), target, device=device))
        return self.unet(latents, t, class_labels=condition).sample
