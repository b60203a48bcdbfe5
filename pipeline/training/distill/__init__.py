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

`method: tuning` stores no trajectories: consistency tuning (Geng et al. 2024) makes each pair on the fly from a
training image, noised to t, and the teacher's guided step from there to an earlier r; the student's own prediction at
r is the target, and the gap t - r shrinks over the run (`tuning`). An update costs the teacher's guided step, a
student pass without gradient and one with it.

Training runs on the loop every training job shares (`pipeline/training/loop.py`): EMA weights, kill-safe
checkpoints (resume with `--resume_from_checkpoint latest`; every random draw is seeded by the update's index),
metrics.jsonl, a loss curve, and an exported pipeline folder (DPM-Solver++ of order 1, i.e. DDIM; its schedules and w range in the encoder's config).

    fashion-ddpm distill --config configs/distill.yaml [key=value ...]

The package, by idea: `config` (keys and checks, torch-free: the command checks a config before it imports torch),
`trajectories`, `targets`, `tuning`, `student`, `card` (distill.json and the card) and `distiller` (the job on the shared loop).
"""

from __future__ import annotations

import importlib

from .config import METHODS, DistillConfig, load_config, validate

# The names the rest of the project imports from here, each from its module: loaded on first use (PEP 562), so that
# importing the config does not import torch.
LAZY = {
    "distill": "distiller", "Distiller": "distiller",
    "recorded_positions": "trajectories", "make_trajectories": "trajectories", "load_trajectories": "trajectories",
    "shard_plan": "trajectories", "fingerprint": "trajectories",
    "velocity_target": "targets", "alpha_sigma": "targets", "PairSampler": "targets", "pair_losses": "targets",
    "predicted_images": "targets", "TuningPairs": "tuning",
    "build_student": "student", "student_pipeline": "student", "student_schedules": "student", "start_from": "student",
    "cumulative_stats": "card",
}
__all__ = ["METHODS", "DistillConfig", "load_config", "validate", *LAZY]


def __getattr__(name: str):
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
