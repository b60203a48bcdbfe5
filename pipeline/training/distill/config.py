"""The distillation's config: keys, defaults and their checks, torch-free (the command checks a config before it
imports torch or loads a model)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ...checks import is_finite_number, is_int
from ..config import check_key_type, read_values, require_key

METHODS = ("trajectory", "consistency", "tuning")


@dataclasses.dataclass
class DistillConfig:
    teacher: str = "pretrained/fashion-ddpm-cpu"  # a class or style pipeline folder (or Hub id), not a student
    output_dir: str = "runs/distill"
    trajectories_dir: str | None = None  # default <output_dir>/trajectories (reused by a rerun of the same teacher)
    init_student: str | None = None  # an earlier student of this teacher and these schedules to train on from
    # "trajectory": each step lands on the teacher's state at its next point; "consistency": each step predicts the
    # image the student itself predicts from the teacher's next state (the image after the last), Song et al. 2023;
    # "tuning": consistency tuning on pairs made on the fly from training images by one guided teacher step (tuning.py)
    method: str = "trajectory"
    tuning_halvings: int = 5  # method tuning: its consistency gap halves this many times over the run
    data_dir: str | None = None  # method tuning: the training images (null: the places training looks)
    # --- the teacher's trajectories
    grid_steps: int = 12  # DPM-Solver++ steps of the teacher; every student step count must divide it
    student_steps: list = dataclasses.field(default_factory=lambda: [1, 2, 4])
    default_steps: int = 4  # the exported model's default step count
    step_weights: list | None = None  # how often each of student_steps is drawn for a pair (null: equally often)
    guidance_values: list = dataclasses.field(default_factory=lambda: [1.0, 1.5, 2.0, 2.5, 3.0])
    default_guidance_scale: float | None = None  # null: the teacher's default w
    trajectories_per_class: int = 160  # per guidance value
    trajectory_seed: int = 100_000  # image j of class c: seed + 1,000,000 c + j (no evaluation uses these)
    shard_per_class: int = 20  # trajectories per class in one shard file
    # a style teacher: each shard's one style request gives every attribute with this probability, at a percentile drawn
    # uniformly in [0, 1] (seeded by the shard), so the student sees any subset of attributes at any level
    style_given_prob: float = 0.5
    # --- the student's training
    train_batch_size: int = 128
    max_train_steps: int = 1000
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 50
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    ema_max_decay: float = 0.999
    ema_power: float = 0.75
    distill_hidden_dim: int = 256
    fourier_features: int = 6
    seed: int = 0
    log_every_steps: int = 25
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 2
    sample_images_per_class: int = 8
    mixed_precision: str = "no"

    @property
    def trajectory_folder(self) -> Path:
        return Path(self.trajectories_dir or Path(self.output_dir) / "trajectories")


def validate(values: dict) -> DistillConfig:
    """A DistillConfig from a dict: unknown keys, wrong types and out-of-range values rejected in one line."""
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
    config = DistillConfig(**{k: check_key_type(k, v, DistillConfig) for k, v in values.items()})
    for key in ("grid_steps", "trajectories_per_class", "shard_per_class", "train_batch_size", "max_train_steps",
                "distill_hidden_dim", "fourier_features", "log_every_steps", "checkpointing_steps",
                "checkpoints_total_limit", "sample_images_per_class"):
        require_key(config, key, lambda v: v >= 1, ">= 1")
    for key in ("lr_warmup_steps", "trajectory_seed", "tuning_halvings"):
        require_key(config, key, lambda v: v >= 0, ">= 0")
    for key in ("learning_rate", "max_grad_norm"):
        require_key(config, key, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
    require_key(config, "ema_max_decay", lambda v: 0 < v < 1, "in (0, 1)")
    require_key(config, "style_given_prob", lambda v: 0 <= v <= 1, "in [0, 1]")
    steps = config.student_steps
    if not steps or not all(is_int(n) and n >= 1 and config.grid_steps % n == 0
                            for n in steps) or len(set(steps)) != len(steps):
        raise ValueError(f"config key 'student_steps' must be distinct ints >= 1 dividing grid_steps "
                         f"({config.grid_steps}), got {steps!r}")
    weights = config.step_weights
    if weights is not None:
        if len(weights) != len(steps) or not all(is_finite_number(v) and v > 0 for v in weights):
            raise ValueError(f"config key 'step_weights' must be {len(steps)} finite numbers > 0 (one per "
                             f"student_steps entry {steps!r}), or null, got {weights!r}")
        config.step_weights = [float(w) for _, w in sorted(zip(steps, weights))]  # in its step counts' order
    config.student_steps = sorted(steps)
    require_key(config, "default_steps", lambda v: v in config.student_steps, f"one of student_steps {config.student_steps}")
    ws = config.guidance_values
    if not ws or not all(is_finite_number(w) and w >= 0 for w in ws) or len(set(ws)) != len(ws):
        raise ValueError(f"config key 'guidance_values' must be distinct finite numbers >= 0, got {ws!r}")
    config.guidance_values = sorted(float(w) for w in ws)
    if len(config.guidance_values) < 2:
        raise ValueError(f"config key 'guidance_values' needs at least two weights (the student's w range), got {ws!r}")
    if config.default_guidance_scale is not None:
        low, high = config.guidance_values[0], config.guidance_values[-1]  # sorted above
        require_key(config, "default_guidance_scale", lambda v: low <= v <= high, f"within guidance_values [{low:g}, {high:g}]")
    if config.method not in METHODS:
        raise ValueError(f"config key 'method' must be one of {list(METHODS)}, got {config.method!r}")
    if config.method != "trajectory" and config.step_weights is not None:
        raise ValueError(f"config key 'step_weights' applies to method 'trajectory' (a consistency student's pairs are "
                         f"not drawn by step count), got {config.step_weights!r}")
    if config.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"config key 'mixed_precision' must be one of ['no', 'fp16', 'bf16'], got {config.mixed_precision!r}")
    return config


def load_config(path: str | None, overrides: list[str] = ()) -> DistillConfig:
    return validate(read_values(path, overrides))


