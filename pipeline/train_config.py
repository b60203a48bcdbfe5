"""Training configuration: one dataclass, loaded from YAML plus `key=value` overrides, strictly validated."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans (as YAML 1.2): `mixed_precision: no` must stay the string "no"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def _yaml(text: str):
    return yaml.load(text, Loader=_Yaml12Loader)


@dataclass
class TrainConfig:
    # --- data
    data_dir: str | None = None  # folder with the four Fashion-MNIST IDX .gz files (else $FASHION_MNIST_DIR, Debian, Hub)
    dataset: str | None = None  # any `datasets` Hub id or save_to_disk folder with image + label columns
    max_train_images: int | None = None  # use only the first N training images (tests, quick runs)
    hflip: bool = False  # random horizontal flip; off: all Fashion-MNIST shoes face left, flips make unseen poses
    # --- model (see DEFAULT_UNET_CONFIG in pipeline_fashion_ddpm.py)
    unet: dict = field(default_factory=dict)  # UNet2DModel overrides, e.g. {block_out_channels: [32, 64, 64]}
    num_train_timesteps: int = 100  # diffusion steps T
    beta_schedule: str = "squaredcos_cap_v2"  # cosine: alpha_bar_T ~ 2e-7 at T=100 (linear would stop at 0.36)
    prediction_type: str = "epsilon"  # "epsilon" (noise, as in the seed) or "v_prediction"
    # --- optimisation
    train_batch_size: int = 128  # per process
    gradient_accumulation_steps: int = 1
    num_epochs: int = 1  # passes over the data (ignored when max_train_steps is set)
    max_train_steps: int | None = None  # optimizer updates in total; overrides num_epochs
    learning_rate: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"  # any diffusers.optimization scheduler name: cosine, linear, constant_with_warmup, ...
    lr_warmup_steps: int = 200
    max_grad_norm: float = 1.0
    label_dropout: float = 0.1  # probability of training on the null class (classifier-free guidance)
    seed: int = 0
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (GPU); on CPU fp16 is ignored and bf16 is slow
    # --- EMA (diffusers EMAModel; samples and exports use the EMA weights)
    use_ema: bool = True
    ema_max_decay: float = 0.9995
    ema_power: float = 0.75  # warm-up: decay = 1 - (1 + step)^-power, capped at ema_max_decay
    # --- output
    output_dir: str = "runs/fashion-ddpm"
    checkpointing_steps: int = 500  # save accelerator state every N updates
    checkpoints_total_limit: int = 3  # keep the newest K checkpoints
    sample_every_steps: int = 1000  # sample grid (EMA weights, fixed seed) every N updates; 0 = only at the end
    sample_images_per_class: int = 8
    sample_guidance_scale: float = 4.0
    log_every_steps: int = 20  # tracker + metrics.jsonl interval
    report_to: str = "tensorboard"  # accelerate tracker: tensorboard, wandb, ... or "none"
    description: str = ""  # one line for the model card


def _check_type(name: str, value):
    annotation = typing.get_type_hints(TrainConfig)[name]
    allowed = tuple(typing.get_origin(a) or a for a in (typing.get_args(annotation) or (annotation,)))
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


CHOICES = {
    "prediction_type": ("epsilon", "v_prediction"),
    "mixed_precision": ("no", "fp16", "bf16"),
}


def validate(values: dict) -> TrainConfig:
    """Builds a TrainConfig from a dict, rejecting unknown keys, wrong types and out-of-range values."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
    checked = {k: _check_type(k, v) for k, v in values.items()}
    config = TrainConfig(**checked)
    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            raise ValueError(f"config key {key!r} must be one of {list(choices)}, got {getattr(config, key)!r}")
    positive = ["train_batch_size", "gradient_accumulation_steps", "num_epochs", "checkpointing_steps",
                "checkpoints_total_limit", "sample_images_per_class", "log_every_steps", "num_train_timesteps"]
    for key in positive + ["max_train_steps", "max_train_images"]:
        value = getattr(config, key)
        if value is not None and value < 1:
            raise ValueError(f"config key {key!r} must be >= 1, got {value}")
    if not 0 <= config.label_dropout < 1:
        raise ValueError(f"config key 'label_dropout' must be in [0, 1), got {config.label_dropout}")
    if config.learning_rate <= 0:
        raise ValueError(f"config key 'learning_rate' must be > 0, got {config.learning_rate}")
    return config


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` with a YAML value: `num_epochs=3`, `unet={block_out_channels: [16, 32, 32]}`, `data_dir=null`."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), _yaml(value)


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    values = {}
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        values = _yaml(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a mapping of keys to values")
    values.update(parse_override(o) for o in overrides)
    return validate(values)
