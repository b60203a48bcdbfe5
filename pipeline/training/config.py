"""Training configuration: one dataclass, loaded from YAML plus `key=value` overrides, strictly validated."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..checks import is_finite_number
from ..schedulers import SAMPLER_NAMES, default_steps


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans (as YAML 1.2): `mixed_precision: no` must stay the string "no"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def _yaml(text: str, where: str):
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(f"{where} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None


@dataclass
class TrainConfig:
    """Every training key with its default. The defaults ARE the recipe the measurements chose (docs/results.md):
    the default model's U-Net (`DEFAULT_UNET_CONFIG`: 64/128/128 channels, attention at 7x7), v-prediction, 40 epochs
    of batch 256, exported to sample with UniPC 10 steps and guidance w = 1.5 for noise levels t/T in [0.17, 0.88].
    A file in configs/ only overrides what differs (size, epochs, precision)."""

    # --- data
    data_dir: str | None = None  # folder with the four Fashion-MNIST IDX .gz files (else $FASHION_MNIST_DIR, Debian, Hub)
    dataset: str | None = None  # any `datasets` Hub id, save_to_disk or data-file folder with image + label columns
    max_train_images: int | None = None  # use only the first N training images (tests, quick runs)
    hflip: bool = False  # random horizontal flip; off: all Fashion-MNIST shoes face left, flips make unseen poses
    mix_dataset: str | None = None  # a second image + label dataset (e.g. `fashion-ddpm synthesize` output) mixed into every batch
    mix_ratio: float = 0.0  # fraction of each batch drawn from mix_dataset, in [0, 1): round(mix_ratio * train_batch_size) images
    # --- model (DEFAULT_UNET_CONFIG in pipeline_fashion_ddpm.py, the recipe's U-Net)
    unet: dict = field(default_factory=dict)  # UNet2DModel overrides, e.g. {block_out_channels: [32, 64, 64]}
    num_train_timesteps: int = 100  # diffusion steps T
    beta_schedule: str = "squaredcos_cap_v2"  # cosine: alpha_bar_T ~ 2e-7 at T=100 (linear would stop at 0.36)
    # v (Salimans & Ho 2022): with noise prediction every fast sampler collapses at the top noise level (docs/results.md)
    prediction_type: str = "v_prediction"  # or "epsilon" (noise, as in the seed notebook)
    # --- style conditioning (a condition encoder: class + measured attributes, pipeline/style/attributes.py)
    style_attributes: list[str] = field(default_factory=list)  # e.g. [width, height, area, slant, thickness, brightness, pattern]
    style_dropout: float = 0.5  # probability that an attribute is left out of an image's condition (any subset can be asked)
    # probability that an image's condition gives no attribute at all (the style=None mode, and the class term of the
    # style's own guidance), beside style_dropout, which alone leaves all of 6 attributes out of 1 image in 64
    style_free_prob: float = 0.0
    style_hidden_dim: int = 128  # width of the condition encoder's style MLP
    # a pipeline folder whose weights start training: a fine-tune of a class-only model, or (with style_attributes) a
    # style model on a class-only U-Net with the style path at 0, or a style model of the same attributes trained on
    init_from: str | None = None
    # the style MLP's learning rate (None: learning_rate). Higher than the U-Net's: the path starts at zero and the
    # loss gains little from style, so at the U-Net's rate it grows too slowly to steer (docs/style.md)
    style_learning_rate: float | None = None
    # --- optimisation
    train_batch_size: int = 256  # per process
    gradient_accumulation_steps: int = 1
    num_epochs: int = 40  # passes over the data (ignored when max_train_steps is set)
    max_train_steps: int | None = None  # optimizer updates in total; overrides num_epochs
    # A wall-clock budget for the updates: after `budget_probe_steps` updates (inside the warm-up, where the learning
    # rate does not depend on the run's length) the run measures its speed and fixes max_train_steps to what fits,
    # at most the epochs / max_train_steps above, so the cosine schedule still ends at 0. null = no budget.
    max_train_minutes: float | None = None
    budget_probe_steps: int = 50
    learning_rate: float = 5e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"  # any diffusers.optimization scheduler name: cosine, linear, constant_with_warmup, ...
    lr_warmup_steps: int = 500
    max_grad_norm: float = 1.0
    label_dropout: float = 0.1  # probability of training on the null class (classifier-free guidance)
    # How the per-image MSE is weighted over noise levels. "none": the plain MSE of the prediction target (for
    # v-prediction that weights the noise-prediction error by SNR + 1). "min_snr": Min-SNR-gamma (Hang et al. 2023),
    # the noise-prediction error weighted by min(SNR, snr_gamma), so that nearly clean steps stop dominating. The
    # recipe since benchmarks/results/recipe_compare_loss_weighting.json (lower judge-FID and Inception FID on both
    # seeds); models trained before that used "none" (a saved train_config.json without the key means "none").
    loss_weighting: str = "min_snr"
    snr_gamma: float = 5.0  # gamma of loss_weighting=min_snr
    # The founding report's CLIP-guided loss: lambda * (1 - cos(image, prompt) + cos(image, negative prompt)) of CLIP's
    # embedding of the model's x0 estimate and of the prompts for the image's class, added to the diffusion loss, for
    # images with t/T <= clip_max_noise (where x0 is informative), each weighted by alpha_bar_t (its signal share);
    # null-class images get none. Gradients flow through the frozen CLIP into the U-Net (pipeline/training/clip_loss.py).
    clip_loss_weight: float = 0.0  # lambda; 0 = off (the recipe: benchmarks/results/clip_loss.json)
    clip_model: str | None = None  # a CLIPModel folder or Hub id; null = the shipped pretrained/fashion-clip
    clip_prompt: str = "a clear photo of a {}"  # {} = the class's prompt name (pipeline.evaluation.clip.PROMPT_NAMES)
    clip_negative_prompt: str | None = "a blurry photo of a {}"  # null = no negative term
    clip_max_noise: float = 0.5
    seed: int = 0
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (GPU); on CPU fp16 is ignored and bf16 is slow
    # Throughput on a GPU, the same maths: torch.compile of the trained module through Accelerate's dynamo plugin
    # (inductor; "reduce-overhead" also replays it as CUDA graphs: a 28x28 U-Net's step is kernel launches, not
    # arithmetic), and channels-last weights (NHWC convolutions, faster under bf16 on tensor cores).
    torch_compile: str = "no"  # "no", "default", "reduce-overhead", "max-autotune" (a torch.compile mode)
    channels_last: bool = False
    # --- EMA (diffusers EMAModel; samples and exports use the EMA weights)
    use_ema: bool = True
    ema_max_decay: float = 0.9995
    ema_power: float = 0.75  # warm-up: decay = 1 - (1 + step)^-power, capped at ema_max_decay
    # More EMAs of the same run kept side by side, one per power (0 = the raw weights), each exported at the end as a
    # pipeline folder `ema-power-<p>/` in output_dir: one run answers "how long an average?" (benchmarks/recipe_compare.py)
    ema_extra_powers: list[float] = field(default_factory=list)
    # --- output
    output_dir: str = "runs/fashion-ddpm"
    checkpointing_steps: int = 1000  # save accelerator state every N updates
    checkpoints_total_limit: int = 3  # keep the newest K checkpoints
    sample_every_steps: int = 2000  # sample grid (EMA weights, fixed seed) every N updates; 0 = only at the end
    sample_images_per_class: int = 8
    # The sampling settings of the sample grids; the exported model keeps them as its defaults (model_index.json).
    # UniPC 10 steps: the fastest sampler within 10 % of 100-step DDPM on both FIDs; guidance only for t/T in
    # [0.17, 0.88] (Kynkäänniemi et al. 2024): lower judge-FID than guidance at every step at each w measured; w = 1.5:
    # the lowest judge-FID with judge accuracy >= 0.95 on the default model (pipeline.recipe.choose_guidance).
    sample_sampler: str = "unipc"  # a name from pipeline.schedulers.SAMPLERS
    sample_steps: int | None = 10  # None: the sampler's default step count
    sample_guidance_scale: float = 1.5
    sample_guidance_interval: list[float] | None = field(default_factory=lambda: [0.17, 0.88])  # null = every step
    log_every_steps: int = 20  # tracker + metrics.jsonl interval
    report_to: str = "tensorboard"  # accelerate tracker: tensorboard, wandb, ... or "none"
    description: str = ""  # one line for the model card

    @property
    def sampling(self):
        """The sample_* keys as the `SamplingSettings` the grids use and the export saves."""
        from ..settings import SamplingSettings

        return SamplingSettings(self.sample_sampler, self.sample_steps, self.sample_guidance_scale,
                                self.sample_guidance_interval)


SAMPLING_KEYS = {"sampler": "config key 'sample_sampler'", "steps": "config key 'sample_steps'",
                 "guidance": "config key 'sample_guidance_scale'", "interval": "config key 'sample_guidance_interval'"}


def check_key_type(name: str, value, config_class=None):
    """`value` for config key `name` if it has the key's annotated type (an int where a float is allowed becomes a
    float); else a one-line ValueError naming the key, the types accepted and the value."""
    annotation = typing.get_type_hints(config_class or TrainConfig)[name]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    allowed = tuple(typing.get_origin(a) or a for a in (typing.get_args(annotation) if union else (annotation,)))
    if value is None and type(None) in allowed:
        return value
    if isinstance(value, bool):  # YAML `yes`/`true` must not pass as an int, nor 1 as a bool
        ok = bool in allowed
    elif isinstance(value, int) and float in allowed:
        return float(value)
    else:
        ok = isinstance(value, allowed)
    if not ok:
        names = " | ".join("None" if a is type(None) else a.__name__ for a in allowed)
        raise ValueError(f"config key {name!r} must be {names}, got {value!r} ({type(value).__name__})")
    return value


# diffusers.optimization.SchedulerType values, listed here so that config errors need no diffusers import.
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "piecewise_constant")
CHOICES = {
    "prediction_type": ("epsilon", "v_prediction"),
    "mixed_precision": ("no", "fp16", "bf16"),
    "lr_scheduler": LR_SCHEDULERS,
    "loss_weighting": ("none", "min_snr"),
    "torch_compile": ("no", "default", "reduce-overhead", "max-autotune"),
}


def validate(values: dict) -> TrainConfig:
    """Builds a TrainConfig from a dict, rejecting unknown keys, wrong types and out-of-range values."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
    checked = {k: check_key_type(k, v) for k, v in values.items()}
    config = TrainConfig(**checked)
    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            raise ValueError(f"config key {key!r} must be one of {list(choices)}, got {getattr(config, key)!r}")
    positive = ["train_batch_size", "gradient_accumulation_steps", "num_epochs", "checkpointing_steps",
                "checkpoints_total_limit", "sample_images_per_class", "log_every_steps", "num_train_timesteps",
                "budget_probe_steps"]
    for key in positive + ["max_train_steps", "max_train_images"]:
        require_key(config, key, lambda v: v is None or v >= 1, ">= 1")
    for key in ("sample_every_steps", "lr_warmup_steps"):
        require_key(config, key, lambda v: v >= 0, ">= 0" + (" (0 = only at the end)" if key == "sample_every_steps" else ""))
    for key in ("learning_rate", "max_grad_norm", "ema_power"):
        require_key(config, key, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
    require_key(config, "max_train_minutes", lambda v: v is None or (math.isfinite(v) and v > 0), "null or a finite number > 0")
    if config.max_train_minutes is not None and config.lr_scheduler != "constant" and config.budget_probe_steps > config.lr_warmup_steps:
        raise ValueError(f"config key 'budget_probe_steps' ({config.budget_probe_steps}) must be <= lr_warmup_steps "
                         f"({config.lr_warmup_steps}) with max_train_minutes: the probe must end inside the warm-up, where "
                         "the learning rate does not depend on the run's length")
    require_key(config, "weight_decay", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
    require_key(config, "label_dropout", lambda v: 0 <= v < 1, "in [0, 1)")
    _check_mixing(config)
    _check_style(config)
    _check_clip_loss(config)
    require_key(config, "ema_max_decay", lambda v: 0 < v < 1, "in (0, 1)")
    require_key(config, "snr_gamma", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
    powers = config.ema_extra_powers
    if not all(is_finite_number(v) and v >= 0 for v in powers) \
            or len(set(powers)) != len(powers) or (config.use_ema and config.ema_power in powers):
        raise ValueError(f"config key 'ema_extra_powers' must be distinct finite numbers >= 0 other than ema_power "
                         f"({config.ema_power}), got {powers!r}")
    config.ema_extra_powers = [float(v) for v in powers]
    for key in ("adam_beta1", "adam_beta2"):
        require_key(config, key, lambda v: 0 <= v < 1, "in [0, 1)")
    if config.sample_steps is None and config.sample_sampler in SAMPLER_NAMES:
        config.sample_steps = min(default_steps(config.sample_sampler), config.num_train_timesteps)
    config.sampling.check(max_steps=config.num_train_timesteps, names=SAMPLING_KEYS)
    if config.unet:
        check_unet_config(config.unet)
    return config


def mix_batch_size(config: TrainConfig) -> int:
    """Images per batch drawn from mix_dataset (0 without mixing)."""
    return round(config.mix_ratio * config.train_batch_size) if config.mix_dataset else 0


def _check_mixing(config: TrainConfig):
    require_key(config, "mix_ratio", lambda v: math.isfinite(v) and 0 <= v < 1,
             "in [0, 1) (the fraction of each batch drawn from mix_dataset)")
    if config.mix_ratio > 0 and not config.mix_dataset:
        raise ValueError(f"config key 'mix_ratio' is {config.mix_ratio} but 'mix_dataset' is not set; name the dataset "
                         "to mix in (a folder or `datasets` id) or set mix_ratio=0")
    if config.mix_dataset and config.mix_ratio == 0:
        raise ValueError(f"config key 'mix_dataset' is {config.mix_dataset!r} but 'mix_ratio' is 0, so nothing would be "
                         "drawn from it; set mix_ratio in (0, 1) or mix_dataset=null")
    mixed, batch = mix_batch_size(config), config.train_batch_size
    if config.mix_dataset and not 1 <= mixed <= batch - 1:
        raise ValueError(f"config key 'mix_ratio' {config.mix_ratio} x train_batch_size {batch} rounds to {mixed} mixed "
                         f"images per batch; it must leave 1..{batch - 1} (some real, some mixed)")


def _check_style(config: TrainConfig):
    from ..style.attributes import ATTRIBUTES

    unknown = [a for a in config.style_attributes if a not in ATTRIBUTES]
    if unknown or len(set(config.style_attributes)) != len(config.style_attributes):
        raise ValueError(f"config key 'style_attributes' must name each of {list(ATTRIBUTES)} at most once, got "
                         f"{config.style_attributes!r}")
    require_key(config, "style_dropout", lambda v: 0 <= v < 1, "in [0, 1)")
    require_key(config, "style_free_prob", lambda v: 0 <= v < 1, "in [0, 1)")
    require_key(config, "style_hidden_dim", lambda v: v >= 1, ">= 1")
    require_key(config, "style_learning_rate", lambda v: v is None or (math.isfinite(v) and v > 0), "a positive number or null")
    if config.style_learning_rate is not None and not config.style_attributes:
        raise ValueError("config key 'style_learning_rate' is the style MLP's; set style_attributes")
    if config.init_from is not None:
        if config.unet:
            raise ValueError("config key 'init_from' takes the U-Net of its model; leave 'unet' empty")
        if not Path(config.init_from, "model_index.json").is_file():
            raise ValueError(f"config key 'init_from' {config.init_from!r} is not a saved pipeline folder (no model_index.json)")
    if config.style_attributes and config.mix_dataset:
        raise ValueError("config keys 'style_attributes' and 'mix_dataset' do not go together (the mixed images carry "
                         "no measured style)")


def _check_clip_loss(config: TrainConfig):
    require_key(config, "clip_loss_weight", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0 (0 = no CLIP loss)")
    require_key(config, "clip_max_noise", lambda v: 0 < v <= 1, "in (0, 1] (the largest t/T that gets the CLIP loss)")
    def is_prompt(v):
        return isinstance(v, str) and v.count("{}") == 1

    require_key(config, "clip_prompt", is_prompt, "a prompt with exactly one {} for the class name")
    require_key(config, "clip_negative_prompt", lambda v: v is None or is_prompt(v),
             "a prompt with exactly one {} for the class name or null")
    if config.clip_loss_weight > 0 and config.clip_model is not None:
        from ..evaluation.clip import check_clip_source

        check_clip_source(config.clip_model, what="config key 'clip_model'")
    elif config.clip_model is not None:
        raise ValueError(f"config key 'clip_model' is {config.clip_model!r} but clip_loss_weight is 0, so it would not be "
                         "used; set clip_loss_weight > 0 or clip_model=null")


def require_key(config, key: str, ok, accepted: str):
    """A one-line ValueError naming config key `key`, its value and what is `accepted`, unless `ok(value)`."""
    value = getattr(config, key)
    if not ok(value):
        raise ValueError(f"config key {key!r} must be {accepted}, got {value!r}")


def check_unet_config(unet: dict):
    """Builds the U-Net on PyTorch's meta device (no memory, no weights) so that a bad `unet:` entry fails now,
    before any data is loaded, with the offending keys named."""
    import inspect

    import torch
    from diffusers import UNet2DModel

    from ..pipeline_fashion_ddpm import DEFAULT_UNET_CONFIG

    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    unknown = sorted(set(unet) - accepted)
    if unknown:
        raise ValueError(f"config key 'unet' has unknown UNet2DModel argument(s) {unknown}; accepted: {sorted(accepted)}")
    try:
        with torch.device("meta"):
            UNet2DModel(**{**DEFAULT_UNET_CONFIG, **unet, "num_class_embeds": 11})
    except Exception as e:  # diffusers raises ValueError / TypeError / others for inconsistent block lists
        raise ValueError(f"config key 'unet' does not build a UNet2DModel: {type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` with a YAML value: `num_epochs=3`, `unet={block_out_channels: [16, 32, 32]}`, `data_dir=null`."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), _yaml(value, f"override {text!r}")


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    return validate(read_values(path, overrides))


def read_values(path: str | None, overrides: list[str] = ()) -> dict:
    """The keys of a YAML config file with `key=value` overrides applied (not yet validated)."""
    values = {}
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        values = _yaml(Path(path).read_text(), f"config file {path}") or {}
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a mapping of keys to values")
    values.update(parse_override(o) for o in overrides)
    return values
