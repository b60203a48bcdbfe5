"""Few-step distillation: a student that samples in 1, 2 or 4 U-Net passes what its guided teacher samples in ~20.

The method is trajectory distillation with the guidance weight and the step's size as inputs:

1. The teacher (a class-only model) samples trajectories with DPM-Solver++ on `grid_steps` trailing timesteps, with
   classifier-free guidance at each of `guidance_values` (on the teacher's own guidance interval), from seeds no
   evaluation uses (`trajectory_seed`, the project's seed rule). The states at the grid points the student's
   schedules start from, and the final image, are stored in shards (`trajectories/`), each written whole or not at
   all, so a killed run resumes with the shards it had.
2. The student's schedule of n steps is every (grid_steps / n)-th grid timestep. One DDIM step of the student from a
   stored state x_t must land on the teacher's state at the next point of its schedule (the clean image after the
   last): solving the DDIM update for the x0 that does so gives the student's target (the target of progressive
   distillation, Salimans & Ho 2022, eq. 7, here over several teacher steps at once), trained as a velocity with
   plain MSE (their "SNR + 1" weighting). All targets are computed before training: an update costs one student
   pass, no teacher pass.
3. The student is the teacher's U-Net with its class embedding moved into a condition encoder that also takes w and
   the noise level the step lands on (`pipeline.condition_encoder`; a zero-initialised MLP, so it starts as the
   teacher's conditional model): one student covers every schedule and a range of w (Meng et al. 2023).

`method: consistency` trains the same student as a consistency model instead (Song et al. 2023, consistency
distillation, on the same stored trajectories): from each recorded state the student predicts an image, the target
being the image the student itself predicts (without gradient) from the teacher's next recorded state, or the
teacher's image after the last. One function then serves every step count (its target level is always 0); it samples
with the same DDIM update, each step re-noising its predicted image along its own noise estimate. An update costs
one more student pass (no gradient) than the trajectory method's.

Training is an Accelerate loop like `train_conditional.py`'s: EMA weights, kill-safe checkpoints (resume with
`--resume_from_checkpoint latest`; every random draw is seeded by the update's index), metrics.jsonl, a loss curve,
and an exported pipeline folder (DPM-Solver++ of order 1, i.e. DDIM; its schedules and w range in the encoder's config).

    fashion-ddpm distill --config configs/distill.yaml [key=value ...]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

from .config import _check_type, _finite_number, _require, read_values

logger = logging.getLogger("fashion_ddpm.distill")
METHODS = ("trajectory", "consistency")


@dataclasses.dataclass
class DistillConfig:
    teacher: str = "pretrained/fashion-ddpm-cpu"  # a class-only pipeline folder (or Hub id)
    output_dir: str = "runs/distill"
    trajectories_dir: str | None = None  # default <output_dir>/trajectories (reused by a rerun of the same teacher)
    init_student: str | None = None  # an earlier student of this teacher and these schedules to train on from
    # "trajectory": each step lands on the teacher's state at its next point; "consistency": each step predicts the
    # image the student itself predicts from the teacher's next state (the image after the last), Song et al. 2023
    method: str = "trajectory"
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

    def schedules(self, T: int) -> dict[int, list[int]]:
        """{n: the student's n timesteps}: every (grid_steps / n)-th of the teacher's trailing grid."""
        from ..pipeline_fashion_ddpm import trailing_timesteps

        grid = trailing_timesteps(T, self.grid_steps)
        return {n: grid[::self.grid_steps // n] for n in self.student_steps}


def validate(values: dict) -> DistillConfig:
    """A DistillConfig from a dict: unknown keys, wrong types and out-of-range values rejected in one line."""
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
    config = DistillConfig(**{k: _check_type(k, v, DistillConfig) for k, v in values.items()})
    for key in ("grid_steps", "trajectories_per_class", "shard_per_class", "train_batch_size", "max_train_steps",
                "distill_hidden_dim", "fourier_features", "log_every_steps", "checkpointing_steps",
                "checkpoints_total_limit", "sample_images_per_class"):
        _require(config, key, lambda v: v >= 1, ">= 1")
    for key in ("lr_warmup_steps", "trajectory_seed"):
        _require(config, key, lambda v: v >= 0, ">= 0")
    for key in ("learning_rate", "max_grad_norm"):
        _require(config, key, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
    _require(config, "ema_max_decay", lambda v: 0 < v < 1, "in (0, 1)")
    steps = config.student_steps
    if not steps or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 and config.grid_steps % n == 0
                            for n in steps) or len(set(steps)) != len(steps):
        raise ValueError(f"config key 'student_steps' must be distinct ints >= 1 dividing grid_steps "
                         f"({config.grid_steps}), got {steps!r}")
    weights = config.step_weights
    if weights is not None:
        if len(weights) != len(steps) or not all(_finite_number(v) and v > 0 for v in weights):
            raise ValueError(f"config key 'step_weights' must be {len(steps)} finite numbers > 0 (one per "
                             f"student_steps entry {steps!r}), or null, got {weights!r}")
        config.step_weights = [float(w) for _, w in sorted(zip(steps, weights))]  # in its step counts' order
    config.student_steps = sorted(steps)
    _require(config, "default_steps", lambda v: v in config.student_steps, f"one of student_steps {config.student_steps}")
    ws = config.guidance_values
    if not ws or not all(_finite_number(w) and w >= 0 for w in ws) or len(set(ws)) != len(ws):
        raise ValueError(f"config key 'guidance_values' must be distinct finite numbers >= 0, got {ws!r}")
    config.guidance_values = sorted(float(w) for w in ws)
    if len(config.guidance_values) < 2:
        raise ValueError(f"config key 'guidance_values' needs at least two weights (the student's w range), got {ws!r}")
    if config.default_guidance_scale is not None:
        low, high = config.guidance_values[0], config.guidance_values[-1]  # sorted above
        _require(config, "default_guidance_scale", lambda v: low <= v <= high, f"within guidance_values [{low:g}, {high:g}]")
    if config.method not in METHODS:
        raise ValueError(f"config key 'method' must be one of {list(METHODS)}, got {config.method!r}")
    if config.method == "consistency" and config.step_weights is not None:
        raise ValueError(f"config key 'step_weights' applies to method 'trajectory' (a consistency student's pairs are "
                         f"its adjacent recorded states, whatever the step count), got {config.step_weights!r}")
    if config.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"config key 'mixed_precision' must be one of ['no', 'fp16', 'bf16'], got {config.mixed_precision!r}")
    return config


def load_config(path: str | None, overrides: list[str] = ()) -> DistillConfig:
    return validate(read_values(path, overrides))


# ---------------------------------------------------------------------------------------------------- trajectories
def recorded_positions(config: DistillConfig) -> list[int]:
    """Grid positions whose states are stored: every schedule's starting points, and grid_steps (the clean image)."""
    return sorted({p for n in config.student_steps for p in range(0, config.grid_steps, config.grid_steps // n)}
                  | {config.grid_steps})


def trajectory_identity(config: DistillConfig, teacher) -> dict:
    return {"teacher": str(config.teacher), "grid_steps": config.grid_steps, "positions": recorded_positions(config),
            "guidance_interval": teacher.config.get("default_guidance_interval"), "seed": config.trajectory_seed,
            "teacher_unet": _fingerprint(teacher.unet)}


def _fingerprint(module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def shard_plan(config: DistillConfig) -> list[tuple[float, int, int]]:
    """(w, start index, images per class) of every shard."""
    step = config.shard_per_class
    return [(w, start, min(step, config.trajectories_per_class - start)) for w in config.guidance_values
            for start in range(0, config.trajectories_per_class, step)]


def shard_path(folder: Path, w: float, start: int) -> Path:
    return folder / f"w{w:g}_{start:06d}.pt"


def teacher_settings(teacher, config: DistillConfig, w: float):
    from ..settings import EVERY_STEP, SamplingSettings

    interval = teacher.config.get("default_guidance_interval") or EVERY_STEP
    return SamplingSettings("dpm++", config.grid_steps, w, tuple(interval))


def make_shard(teacher, config: DistillConfig, w: float, start: int, count: int) -> dict:
    """The teacher's states at the recorded grid positions for `count` images of every class, from `start`."""
    import torch

    from ..sampling import generate, initial_noise, plan

    positions = recorded_positions(config)
    states: dict[int, list] = {p: [] for p in positions}

    def record(pipe, i, t, tensors):  # after step i the latents sit at grid position i + 1
        if i + 1 in states:
            states[i + 1].append(tensors["latents"].detach().float().cpu().clone())
        return tensors

    classes = list(range(len(teacher.class_names)))
    ids, seeds = plan(classes, count, config.trajectory_seed, start)
    states[0] = [initial_noise(teacher, seeds) * teacher.scheduler.init_noise_sigma]
    generate(teacher, classes, count, config.trajectory_seed, batch_size=len(ids), start_index=start,
             settings=teacher_settings(teacher, config, w), callback_on_step_end=record)
    stacked = torch.stack([torch.cat(states[p]) for p in positions], dim=1)  # (N, positions, C, H, W)
    return {"states": stacked, "class_ids": torch.tensor(ids), "seeds": torch.tensor(seeds),
            "guidance": torch.full((len(ids),), w)}


def make_trajectories(teacher, config: DistillConfig, rank: int = 0, world: int = 1) -> Path:
    """Every missing shard of `shard_plan` that falls to this process (shard k: process k mod world)."""
    import torch

    folder = config.trajectory_folder
    folder.mkdir(parents=True, exist_ok=True)
    identity = trajectory_identity(config, teacher)
    index = folder / "trajectories.json"
    if index.is_file() and json.loads(index.read_text()) != identity:
        raise ValueError(f"{folder} holds trajectories of {json.loads(index.read_text())}, not of {identity}; give "
                         "another trajectories_dir")
    if rank == 0 and not index.is_file():
        index.write_text(json.dumps(identity, indent=2) + "\n")
    plan = shard_plan(config)
    for k, (w, start, count) in enumerate(plan):
        path = shard_path(folder, w, start)
        if k % world != rank or path.is_file():
            continue
        began = time.perf_counter()
        shard = make_shard(teacher, config, w, start, count)
        shard["seconds"] = torch.tensor([time.perf_counter() - began])  # the cost of distilling includes these
        tmp = path.with_name(f".tmp-{path.name}")
        torch.save(shard, tmp)
        os.replace(tmp, path)  # whole or not at all
        logger.info("trajectory shard %d/%d (w %g, %d images) in %.0f s", k + 1, len(plan), w, len(shard["seeds"]),
                    time.perf_counter() - began)
    return folder


def load_trajectories(config: DistillConfig) -> dict:
    import torch

    shards = [torch.load(shard_path(config.trajectory_folder, w, start)) for w, start, _ in shard_plan(config)]
    return {key: torch.cat([s[key] for s in shards]) for key in shards[0]}


# ---------------------------------------------------------------------------------------------------- targets
def alpha_sigma(alphas_cumprod, t):
    """(alpha_t, sigma_t) of timesteps `t`; t = -1 is the clean image (alpha 1, sigma 0)."""
    import torch

    bar = torch.where(t >= 0, alphas_cumprod[t.clamp(min=0)], torch.ones_like(alphas_cumprod[0]))
    return bar.sqrt(), (1 - bar).sqrt()


def velocity_target(x_from, x_to, t_from, t_to, alphas_cumprod):
    """The velocity v at (x_from, t_from) whose DDIM step lands exactly on x_to at t_to (-1: x_to is the image).

    DDIM: x_to = a' x0 + s' (x_from - a x0) / s, so x0 = (x_to - (s'/s) x_from) / (a' - a s'/s); and v = (a x - x0) / s.
    """
    shape = (-1,) + (1,) * (x_from.ndim - 1)
    a, s = (v.view(shape) for v in alpha_sigma(alphas_cumprod, t_from))
    a2, s2 = (v.view(shape) for v in alpha_sigma(alphas_cumprod, t_to))
    x0 = (x_to - (s2 / s) * x_from) / (a2 - a * s2 / s)
    return (a * x_from - x0) / s


class PairSampler:
    """The training pairs: a group, a pair of recorded states in it, a trajectory; drawn from the update's generator.

    A trajectory student's groups are its step counts (each step of that schedule is a pair); a consistency student's
    are the links of its chain, every recorded state to the next (the links of the finest schedule for 1, 2 and 4
    steps), since one function serves every step count. `names` labels each group's loss in metrics.jsonl."""

    def __init__(self, config: DistillConfig, T: int):
        from ..pipeline_fashion_ddpm import trailing_timesteps

        positions = recorded_positions(config)
        timesteps = trailing_timesteps(T, config.grid_steps) + [-1]  # position grid_steps: the clean image
        self.weights = config.step_weights

        def pair(p, q):  # (slot from, slot to, t from, t to)
            return positions.index(p), positions.index(q), timesteps[p], timesteps[q]

        if config.method == "consistency":
            self.pairs = [[pair(p, q)] for p, q in zip(positions, positions[1:])]
            self.names = [f"from_t{timesteps[p]}" for p in positions[:-1]]
        else:
            self.pairs = [[pair(p, p + config.grid_steps // n) for p in range(0, config.grid_steps, config.grid_steps // n)]
                          for n in config.student_steps]
            self.names = [f"{n}_steps" for n in config.student_steps]

    def draw(self, count: int, num_trajectories: int, generator):
        """(trajectory rows, picks): each pick is (slot from, slot to, t from, t to, index of its group)."""
        import torch

        if self.weights is None:
            which = torch.randint(len(self.pairs), (count,), generator=generator)
        else:
            which = torch.multinomial(torch.tensor(self.weights), count, replacement=True, generator=generator)
        picks = [(*self.pairs[int(k)][int(torch.randint(len(self.pairs[int(k)]), (1,), generator=generator))], int(k))
                 for k in which]
        trajectories = torch.randint(num_trajectories, (count,), generator=generator)
        return trajectories, torch.tensor(picks)


def pair_losses(model, target_model, data: dict, rows, picks, method: str, alphas_cumprod):
    """Each drawn pair's loss (velocity MSE, on the device of `alphas_cumprod`): `rows` index the trajectories in
    `data`, `picks` are `PairSampler.draw`'s; `target_model` (the same weights, without a training wrapper) makes a
    consistency student's targets."""
    import torch
    import torch.nn.functional as F

    device, T = alphas_cumprod.device, len(alphas_cumprod)
    states = data["states"][rows]
    x_from = states[torch.arange(len(rows)), picks[:, 0]].to(device)
    x_to = states[torch.arange(len(rows)), picks[:, 1]].to(device)
    t_from, t_to = picks[:, 2].to(device), picks[:, 3].to(device)
    classes, guidance = data["class_ids"][rows].to(device), data["guidance"][rows].to(device)
    levels = (t_to.float() + 1) / T  # the noise level the step lands on (0: the clean image)
    if method == "consistency":  # land on the image the student predicts from the teacher's next state
        x_to, t_to = predicted_images(target_model, x_to, t_to, classes, guidance, alphas_cumprod), torch.full_like(t_to, -1)
    target = velocity_target(x_from, x_to, t_from, t_to, alphas_cumprod)
    prediction = model(x_from, t_from, classes, guidance=guidance, target=levels)
    return F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))


def predicted_images(model, x, t, classes, guidance, alphas_cumprod):
    """The consistency target: the image the student (without gradient: its own weights, as improved consistency
    training does, Song & Dhariwal 2023) predicts from each state; a state at t = -1 is already the image."""
    import torch

    images, inner = x.clone(), t >= 0
    if inner.any():
        with torch.no_grad():
            v = model(x[inner], t[inner], classes[inner], guidance=guidance[inner],
                      target=torch.zeros(int(inner.sum()), device=x.device)).float()
        a, s = (u.view(-1, 1, 1, 1) for u in alpha_sigma(alphas_cumprod, t[inner]))
        images[inner] = (a * x[inner] - s * v).to(images.dtype)
    return images


# ---------------------------------------------------------------------------------------------------- the student
def build_student(teacher, config: DistillConfig):
    """The untrained student: the teacher's U-Net (class embedding moved into a distilled condition encoder whose MLP
    starts at zero, so it computes the teacher's conditional output), as one module to train."""
    from ..condition_encoder import FashionStudentConditionEncoder
    from .style import StyleDenoiser, from_class_only

    T = teacher.scheduler.config.num_train_timesteps
    encoder = FashionStudentConditionEncoder(
        len(teacher.class_names) + 1, teacher.unet.config.block_out_channels[0] * 4,
        guidance_range=[config.guidance_values[0], config.guidance_values[-1]],
        guidance_interval=teacher.config.get("default_guidance_interval"),
        step_schedules={str(n): ts for n, ts in config.schedules(T).items()},
        distill_hidden_dim=config.distill_hidden_dim, fourier_features=config.fourier_features,
        consistency=config.method == "consistency")
    return StyleDenoiser(from_class_only(teacher, encoder), encoder)


def student_pipeline(teacher, config: DistillConfig, student):
    """A student module as a pipeline: DDIM (DPM-Solver++ of order 1) on its schedules, `default_steps` of them, and
    the teacher's w (clipped to the distilled range) unless `default_guidance_scale` names another."""
    from ..pipeline_fashion_ddpm import FashionDDPMStudentPipeline
    from ..schedulers import make_scheduler

    w = config.default_guidance_scale
    if w is None:
        w = min(max(teacher.config.default_guidance_scale, config.guidance_values[0]), config.guidance_values[-1])
    T = teacher.scheduler.config.num_train_timesteps
    pipe = FashionDDPMStudentPipeline(student.unet, make_scheduler("ddim", teacher.scheduler.config),
                               class_names=teacher.class_names, default_guidance_scale=w,
                               default_num_inference_steps=config.default_steps,
                               default_guidance_interval=teacher.config.get("default_guidance_interval"),
                               condition_encoder=student.encoder, default_timesteps=config.schedules(T)[config.default_steps])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def start_from(student, config: DistillConfig) -> dict:
    """Loads `config.init_student`'s weights into `student` (after checking it is a student of the same teacher, w
    range and schedules) and returns its distill.json, whose cost the new run's stats add to."""
    from ..models import load_pipeline, resolve_model

    source = config.init_student
    earlier = load_pipeline(source)
    record_path = Path(resolve_model(source)) / "distill.json"
    if not earlier.is_distilled or not record_path.is_file():
        raise ValueError(f"init_student {source!r} is not a distilled student (no distilled condition encoder and "
                         "distill.json); give the folder a distill run exported")
    record = json.loads(record_path.read_text())
    if record["config"]["teacher"] != config.teacher:
        raise ValueError(f"init_student {source!r} was distilled from {record['config']['teacher']!r}, not from the "
                         f"teacher {config.teacher!r}")
    for key in ("step_schedules", "guidance_range", "guidance_interval", "distill_hidden_dim", "fourier_features",
                "consistency"):
        theirs, mine = earlier.condition_encoder.config[key], student.encoder.config[key]
        if theirs != mine:
            raise ValueError(f"init_student {source!r} has {key} {theirs!r}, but this config makes {mine!r}")
    student.unet.load_state_dict(earlier.unet.state_dict())
    student.encoder.load_state_dict(earlier.condition_encoder.state_dict())
    return record


def _stage(config: dict, stats: dict) -> dict:
    return {"updates": stats["updates"], "trajectories": stats["trajectories"],
            "learning_rate": config["learning_rate"], "wall_time_s": stats["wall_time_s"],
            "final_loss": stats["final_loss"], "init_student": config.get("init_student"),
            "step_weights": config.get("step_weights")}


def cumulative_stats(prior: dict | None, stats: dict, config: DistillConfig) -> dict:
    """A run's stats with the cost of the run it started from added: updates, pairs and wall time summed over the
    stages (listed in "stages"). When both runs drew trajectories from one family (same teacher grid, w values, seed
    and schedules), the smaller set is the first images of the larger (the seed rule), so the trajectories and their
    time count once, the larger set's; otherwise both are summed."""
    if prior is None:
        return stats
    before, earlier = prior["stats"], prior["config"]
    one_family = all(earlier.get(k) == getattr(config, k) for k in
                     ("grid_steps", "guidance_values", "trajectory_seed", "student_steps"))
    larger = max(before, stats, key=lambda s: s["trajectories"])
    return {**stats, "updates": before["updates"] + stats["updates"],
            "pairs_seen": before["pairs_seen"] + stats["pairs_seen"],
            "wall_time_s": round(before["wall_time_s"] + stats["wall_time_s"], 1),
            "trajectories": larger["trajectories"] if one_family else before["trajectories"] + stats["trajectories"],
            "trajectory_time_s": larger["trajectory_time_s"] if one_family
            else round(before["trajectory_time_s"] + stats["trajectory_time_s"], 1),
            "stages": before.get("stages", [_stage(earlier, before)]) + [_stage(dataclasses.asdict(config), stats)]}


# ---------------------------------------------------------------------------------------------------- training
class Distiller:
    def __init__(self, config: DistillConfig):
        import torch
        from accelerate import Accelerator

        self.config = config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        multi_process_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.accelerator = Accelerator(cpu=multi_process_cpu, mixed_precision=config.mixed_precision)

    def setup(self):
        import torch
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import EMAModel

        from ..models import load_pipeline
        from . import checkpoints

        config, acc = self.config, self.accelerator
        self.teacher = load_pipeline(config.teacher)
        if getattr(self.teacher, "condition_encoder", None) is not None:
            raise ValueError(f"teacher {config.teacher!r} must be a class-only model (a style or distilled model has a "
                             "condition encoder)")
        self.teacher.set_progress_bar_config(disable=True)
        self.teacher.to(acc.device)
        self.T = self.teacher.scheduler.config.num_train_timesteps
        torch.manual_seed(config.seed)  # the zero-initialised MLP's first layer
        student = build_student(self.teacher, config)
        self.prior = start_from(student, config) if config.init_student else None  # checked before any trajectory
        if acc.is_main_process:
            checkpoints.remove_partial(self.checkpoint_dir)
        make_trajectories(self.teacher, config, acc.process_index, acc.num_processes)
        acc.wait_for_everyone()
        self.data = load_trajectories(config)
        self.pairs = PairSampler(config, self.T)
        self.ema = EMAModel(student.parameters(), decay=config.ema_max_decay, use_ema_warmup=True, power=config.ema_power)
        self.ema.to(acc.device)
        optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate,
                                      betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay)
        self.lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                                          num_training_steps=config.max_train_steps)
        self.model, self.optimizer = acc.prepare(student, optimizer)
        acc.register_for_checkpointing(self.lr_scheduler)
        acc.register_for_checkpointing(self.ema)
        self.alphas_cumprod = self.teacher.scheduler.alphas_cumprod.to(acc.device)
        self.elapsed = 0.0

    def loss_on(self, step: int):
        import torch

        from .trainer import _step_generator

        acc, config = self.accelerator, self.config
        generator = _step_generator(config.seed, step, 0, acc.process_index)
        rows, picks = self.pairs.draw(config.train_batch_size, len(self.data["seeds"]), generator)
        per_pair = pair_losses(self.model, acc.unwrap_model(self.model), self.data, rows, picks, config.method,
                               self.alphas_cumprod)
        kinds = picks[:, 4].to(acc.device)
        each = range(len(self.pairs.names))  # per group: the sum of its pairs' losses, and their number
        by_steps = torch.stack([(per_pair.detach() * (kinds == k)).sum() for k in each])
        counts = torch.stack([(kinds == k).sum() for k in each]).float()
        return per_pair.mean(), by_steps, counts

    def update(self, step: int):
        acc = self.accelerator
        loss, by_steps, counts = self.loss_on(step)
        acc.backward(loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.model.parameters())
        return loss.detach(), by_steps, counts

    def student_pipeline(self):
        """The EMA student as a pipeline."""
        import copy

        model = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        self.ema.copy_to(model.parameters())
        return student_pipeline(self.teacher, self.config, model.eval())

    def _log(self, row: dict):
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def export(self, final_loss: float | None, step: int) -> Path:
        from ..io import move_into
        from ..settings import SamplingSettings
        from ..visualize import sample_grid
        from .model_card import write_student_card
        from .plots import plot_loss_curve
        from .trainer import _hardware

        pipe = self.student_pipeline()
        tmp = self.output_dir / ".tmp-export"
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp)
        settings = SamplingSettings.resolve(pipe)
        (tmp / "samples").mkdir()
        sample_grid(pipe, self.config.sample_images_per_class, seed=0, settings=settings,
                    title=f"distilled student, {settings.describe()}").save(tmp / "samples" / "final.png")
        plot_loss_curve(self.output_dir / "metrics.jsonl", tmp / "samples" / "loss_curve.png")
        stats = {"updates": step, "pairs_seen": step * self.config.train_batch_size * self.accelerator.num_processes,
                 "trajectories": len(self.data["seeds"]), "wall_time_s": round(self.elapsed, 1), "final_loss": final_loss,
                 "trajectory_time_s": round(float(self.data["seconds"].sum()), 1),
                 "hardware": _hardware(self.accelerator), "parameters": sum(p.numel() for p in pipe.unet.parameters())
                 + sum(p.numel() for p in pipe.condition_encoder.parameters())}
        stats = cumulative_stats(self.prior, stats, self.config)
        (tmp / "distill.json").write_text(json.dumps({"config": dataclasses.asdict(self.config), "stats": stats},
                                                     indent=2) + "\n")
        write_student_card(tmp, local_path=self.output_dir.as_posix())
        move_into(tmp, self.output_dir)
        return self.output_dir

    def run(self, resume_from_checkpoint: str | None = None) -> Path:
        from tqdm.auto import tqdm

        from . import checkpoints
        from .files import trim_rows

        config, acc = self.config, self.accelerator
        start = 0
        if resume_from_checkpoint:
            state = checkpoints.resume(acc, self.checkpoint_dir, resume_from_checkpoint)
            if state is not None:
                start, self.elapsed = state["step"], state.get("wall_time_s", 0.0)
                self.ema.to(acc.device)
                logger.info("resumed from update %d", start)
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            trim_rows(self.output_dir / "metrics.jsonl", start)
            (self.output_dir / "distill_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        logger.info("distilling %s into %s steps: %d trajectories, %d updates of %d pairs", config.teacher,
                    config.student_steps, len(self.data["seeds"]), config.max_train_steps, config.train_batch_size)
        self.model.train()
        bar = tqdm(initial=start, total=config.max_train_steps, disable=not acc.is_local_main_process, desc="distill")
        done, window, count, began, logged = start, 0.0, 0, time.perf_counter(), None
        by_steps = pairs = 0.0
        while done < config.max_train_steps:
            loss, step_sums, step_counts = self.update(done)
            done += 1
            bar.update()
            window, count = window + loss, count + 1
            by_steps, pairs = by_steps + step_sums, pairs + step_counts
            if done % config.log_every_steps == 0 or done == config.max_train_steps:
                now = time.perf_counter()
                self.elapsed += now - began
                logged = acc.reduce(window / count, "mean").item()
                sums, numbers = acc.reduce(by_steps, "sum").tolist(), acc.reduce(pairs, "sum").tolist()
                row = {"step": done, "loss": logged, "lr": self.lr_scheduler.get_last_lr()[0],
                       "pairs_per_s": count * config.train_batch_size * acc.num_processes / (now - began),
                       "wall_time_s": self.elapsed,
                       **{f"loss_{name}": total / number for name, total, number in
                          zip(self.pairs.names, sums, numbers) if number}}
                bar.set_postfix(loss=f"{logged:.4f}")
                if acc.is_main_process:
                    self._log(row)
                window, count, began, by_steps, pairs = 0.0, 0, now, 0.0, 0.0
            if done % config.checkpointing_steps == 0 or done == config.max_train_steps:
                checkpoints.save_checkpoint(acc, self.checkpoint_dir, done, config.checkpoints_total_limit,
                                            {"wall_time_s": self.elapsed})
                began = time.perf_counter()
        bar.close()
        acc.wait_for_everyone()
        if acc.is_main_process:
            if logged is None:  # resumed at its last update (killed before its export): the loss it last logged
                from .plots import read_metrics

                logged = read_metrics(self.output_dir / "metrics.jsonl")[-1]["loss"]
            self.export(logged, config.max_train_steps)
            logger.info("exported the EMA student to %s", self.output_dir)
        acc.end_training()
        return self.output_dir


def distill(config: DistillConfig, resume_from_checkpoint: str | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    distiller = Distiller(config)
    distiller.setup()
    return distiller.run(resume_from_checkpoint)
