"""The teacher's trajectories: its states at the grid points the student's schedules start from, and its final image,
sampled with DPM-Solver++ under classifier-free guidance from seeds no evaluation uses, stored in shards written
whole or not at all (a killed run resumes with the shards it had)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from ...io import atomic_path, atomic_write_json
from ...sampling import generate, initial_noise, plan
from ...settings import EVERY_STEP, SamplingSettings
from .config import DistillConfig

logger = logging.getLogger("fashion_ddpm.distill")


def recorded_positions(config: DistillConfig) -> list[int]:
    """Grid positions whose states are stored: every schedule's starting points, and grid_steps (the clean image)."""
    return sorted({p for n in config.student_steps for p in range(0, config.grid_steps, config.grid_steps // n)}
                  | {config.grid_steps})


def trajectory_identity(config: DistillConfig, teacher) -> dict:
    identity = {"teacher": str(config.teacher), "grid_steps": config.grid_steps, "positions": recorded_positions(config),
                "guidance_interval": teacher.config.get("default_guidance_interval"), "seed": config.trajectory_seed,
                "teacher_unet": fingerprint(teacher.unet)}
    if teacher.style_attributes:  # (a class-only teacher's identity stays as its trajectories were written)
        identity["style"] = {"attributes": teacher.style_attributes, "given_prob": config.style_given_prob,
                             "encoder": fingerprint(teacher.condition_encoder),
                             "style_guidance": teacher.config.get("default_style_guidance_scale")}
    return identity


def style_request(teacher, config: DistillConfig, w: float, start: int) -> dict[str, float]:
    """The style request of the shard of guidance `w` from image `start` (a style teacher; {} for a class-only one):
    each attribute given with probability style_given_prob at a uniform percentile, seeded by the shard."""
    attributes = teacher.style_attributes
    if not attributes:
        return {}
    g = torch.Generator().manual_seed(config.trajectory_seed * 7919 + config.guidance_values.index(w) * 104729 + start)
    given, values = torch.rand(len(attributes), generator=g), torch.rand(len(attributes), generator=g)
    return {a: round(float(v), 4) for a, p, v in zip(attributes, given, values) if p < config.style_given_prob}


def fingerprint(module) -> str:
    """A digest of a module's weights: trajectories of another teacher are refused, not mixed in."""
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


def teacher_settings(teacher, config: DistillConfig, w: float) -> SamplingSettings:
    """DPM-Solver++ on the grid, at guidance w on the teacher's own interval (a style teacher: its own style guidance)."""
    interval = teacher.config.get("default_guidance_interval") or EVERY_STEP
    return SamplingSettings("dpm++", config.grid_steps, w, tuple(interval),
                            style_guidance=teacher.config.get("default_style_guidance_scale"))


def make_shard(teacher, config: DistillConfig, w: float, start: int, count: int) -> dict:
    """The teacher's states at the recorded grid positions for `count` images of every class, from `start`."""
    positions = recorded_positions(config)
    states: dict[int, list] = {p: [] for p in positions}

    def record(pipe, i, t, tensors):  # after step i the latents sit at grid position i + 1
        if i + 1 in states:
            states[i + 1].append(tensors["latents"].detach().float().cpu().clone())
        return tensors

    classes = list(range(len(teacher.class_names)))
    ids, seeds = plan(classes, count, config.trajectory_seed, start)
    states[0] = [initial_noise(teacher, seeds) * teacher.scheduler.init_noise_sigma]
    request = style_request(teacher, config, w, start)
    generate(teacher, classes, count, config.trajectory_seed, batch_size=len(ids), start_index=start,
             settings=teacher_settings(teacher, config, w), callback_on_step_end=record, style=request or None)
    stacked = torch.stack([torch.cat(states[p]) for p in positions], dim=1)  # (N, positions, C, H, W)
    shard = {"states": stacked, "class_ids": torch.tensor(ids), "seeds": torch.tensor(seeds),
             "guidance": torch.full((len(ids),), w)}
    if teacher.style_attributes:  # the request as the encoder takes it: (values, given) per image
        given = torch.tensor([float(a in request) for a in teacher.style_attributes])
        values = torch.tensor([request.get(a, 0.0) for a in teacher.style_attributes])
        shard.update(style_values=values.repeat(len(ids), 1), style_given=given.repeat(len(ids), 1))
    return shard


def make_trajectories(teacher, config: DistillConfig, rank: int = 0, world: int = 1) -> Path:
    """Every missing shard of `shard_plan` that falls to this process (shard k: process k mod world)."""
    folder = config.trajectory_folder
    folder.mkdir(parents=True, exist_ok=True)
    identity = trajectory_identity(config, teacher)
    index = folder / "trajectories.json"
    if index.is_file() and json.loads(index.read_text()) != identity:
        raise ValueError(f"{folder} holds trajectories of {json.loads(index.read_text())}, not of {identity}; give "
                         "another trajectories_dir")
    if rank == 0 and not index.is_file():
        atomic_write_json(index, identity)
    shards = shard_plan(config)
    for k, (w, start, count) in enumerate(shards):
        path = shard_path(folder, w, start)
        if k % world != rank or path.is_file():
            continue
        began = time.perf_counter()
        shard = make_shard(teacher, config, w, start, count)
        shard["seconds"] = torch.tensor([time.perf_counter() - began])  # the cost of distilling includes these
        with atomic_path(path) as tmp:  # whole or not at all
            torch.save(shard, tmp)
        logger.info("trajectory shard %d/%d (w %g, %d images) in %.0f s", k + 1, len(shards), w, len(shard["seeds"]),
                    time.perf_counter() - began)
    return folder


def load_trajectories(config: DistillConfig) -> dict:
    """Every shard of the plan, concatenated: {"states", "class_ids", "seeds", "guidance", "seconds"}."""
    shards = [torch.load(shard_path(config.trajectory_folder, w, start)) for w, start, _ in shard_plan(config)]
    return {key: torch.cat([s[key] for s in shards]) for key in shards[0]}

