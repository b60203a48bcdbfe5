"""A student's record (distill.json: its config and the cost of every stage it took) and its card, rendered from the
same template as every model card."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ...io import atomic_write_json
from ..model_card import write_student_card
from .config import DistillConfig


def stage_summary(config: dict, stats: dict) -> dict:
    """One stage of a student's training, as its card lists it."""
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
            "stages": before.get("stages", [stage_summary(earlier, before)]) + [stage_summary(dataclasses.asdict(config), stats)]}



def write_record(folder: Path, config: DistillConfig, stats: dict, local_path: str):
    """distill.json (the config and the cumulative stats) and the student's card, into `folder`."""
    atomic_write_json(folder / "distill.json", {"config": dataclasses.asdict(config), "stats": stats})
    write_student_card(folder, local_path=local_path)
