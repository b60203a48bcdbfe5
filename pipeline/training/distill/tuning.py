"""Consistency tuning (`method: tuning`): the teacher fine-tuned into a few-step consistency model without stored
trajectories, in the manner of easy consistency tuning (Geng et al. 2024): start from the diffusion model and shrink
the consistency step as training goes.

Each pair is made on the fly from a training image x0, its noise n and a timestep t: x_t = a_t x0 + s_t n; the
teacher's guided DDIM step (at a drawn w, on its own interval, with its guide and style guidance if it has them)
carries x_t to an earlier r; the target is the image the student itself predicts from there without gradient (the
image itself at r = -1, the clean end). The teacher's step is there because a guided student must learn the guided
ODE, which no pair of data and noise shows (consistency training alone would learn the unguided one). The gap t - r
starts at t + 1 (r = -1: the student learns the teacher's guided denoiser) and halves `tuning_halvings` times over the
run, evenly spaced. Half the timesteps are the starts of the student's schedules, half any timestep.

An update costs the teacher's guided step (two U-Net passes inside its guidance interval, one outside; plus its guide),
a student pass without gradient and the student's pass with it; no trajectory is stored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...data import load_dataset, to_model_range
from ...pipeline_fashion_ddpm import trailing_timesteps
from ..style import image_percentiles
from .config import DistillConfig
from .targets import alpha_sigma, predicted_images, velocity_target
from .trajectories import recorded_positions

# the teacher's step takes one timestep and one w per call (its guidance interval is checked per call), so a batch is
# made of groups of this many images, each with its own t and w
TEACHER_GROUP = 16


def gap_fraction(progress: float, halvings: int) -> float:
    """The consistency gap (t - r) as a fraction of t + 1 at `progress` in [0, 1] of the run: 1, 1/2, ..., 2^-halvings
    in halvings + 1 equal parts."""
    return 2.0 ** -min(halvings, math.floor(progress * (halvings + 1)))


def earlier_timesteps(t: torch.Tensor, fraction: float) -> torch.Tensor:
    """r = t - max(1, round((t + 1) * fraction)): at fraction 1 every r is -1 (the clean image)."""
    gap = torch.clamp(torch.round((t + 1).float() * fraction).long(), min=1)
    return torch.clamp(t - gap, min=-1)


class TuningPairs:
    """The training images (and for a style teacher their attributes as the teacher's percentiles) and the draws of
    one update. `names` labels the two kinds of timestep in metrics.jsonl."""

    names = ["schedule_starts", "any_t"]

    def __init__(self, teacher, config: DistillConfig):
        data = load_dataset(config.data_dir)
        if list(data.class_names) != list(teacher.class_names):
            raise ValueError(f"the training data's classes {list(data.class_names)} are not the teacher's "
                             f"{list(teacher.class_names)}")
        self.teacher, self.config = teacher, config
        self.images, self.labels = to_model_range(data.images), data.labels
        self.style = None
        if teacher.style_attributes:
            self.style = image_percentiles(teacher.condition_encoder, data.images, data.labels)
        self.T = teacher.scheduler.config.num_train_timesteps
        grid = trailing_timesteps(self.T, config.grid_steps)
        self.starts = torch.tensor([grid[p] for p in recorded_positions(config)[:-1]])
        self.sampling = teacher.resolve_sampling()  # its guidance interval, guide and style guidance

    def __len__(self) -> int:
        return len(self.images)

    def draw(self, count: int, generator: torch.Generator, progress: float) -> dict:
        """One update's images, noise, timesteps t and r, w, kinds and style requests (CPU tensors); t and w are drawn
        once per group of TEACHER_GROUP images."""
        config, groups = self.config, -(-count // TEACHER_GROUP)
        rows = torch.randint(len(self.images), (count,), generator=generator)
        kinds = (torch.rand(groups, generator=generator) >= 0.5).long()
        start = self.starts[torch.randint(len(self.starts), (groups,), generator=generator)]
        t = torch.where(kinds == 0, start, torch.randint(self.T, (groups,), generator=generator))
        low, high = config.guidance_values[0], config.guidance_values[-1]
        w = low + (high - low) * torch.rand(groups, generator=generator)
        clean = self.images[rows]
        batch = {"clean": clean, "noise": torch.randn(clean.shape, generator=generator), "classes": self.labels[rows]}
        batch["t"], batch["guidance"], batch["kinds"] = (x.repeat_interleave(TEACHER_GROUP)[:count] for x in (t, w, kinds))
        batch["r"] = earlier_timesteps(batch["t"], gap_fraction(progress, config.tuning_halvings))
        if self.style is not None:  # each attribute given with style_given_prob at the image's own percentile
            values = self.style[rows]
            given = (torch.rand(values.shape, generator=generator) < config.style_given_prob) & ~values.isnan()
            batch["style"] = (values.nan_to_num(0.0), given.float())
        return batch

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, batch: dict, alphas_cumprod: torch.Tensor) -> torch.Tensor:
        """The teacher's guided DDIM step of every image from its t to its r (r = -1: its predicted image)."""
        out = torch.empty_like(x)
        style = batch.get("style")
        for first in range(0, len(x), TEACHER_GROUP):
            part = slice(first, first + TEACHER_GROUP)
            sampling = {**self.sampling, "guidance_scale": float(batch["guidance"][first])}
            out[part] = self.teacher.model_output(x[part], batch["t"][first], 0, batch["classes"][part],
                                                  None if style is None else tuple(s[part] for s in style), sampling)
        a, s = (u.view(-1, 1, 1, 1) for u in alpha_sigma(alphas_cumprod, batch["t"]))
        a2, s2 = (u.view(-1, 1, 1, 1) for u in alpha_sigma(alphas_cumprod, batch["r"]))
        image, noise = a * x - s * out, s * x + a * out  # the velocity's image and noise
        return a2 * image + s2 * noise

    def losses(self, model, target_model, count: int, generator: torch.Generator, alphas_cumprod: torch.Tensor,
               progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair's velocity MSE, and its kind (0: t a schedule's start, 1: any t)."""
        device = alphas_cumprod.device
        batch = {k: tuple(x.to(device) for x in v) if k == "style" else v.to(device)
                 for k, v in self.draw(count, generator, progress).items()}
        a, s = (u.view(-1, 1, 1, 1) for u in alpha_sigma(alphas_cumprod, batch["t"]))
        x_t = a * batch["clean"] + s * batch["noise"]
        x_r = self.teacher_step(x_t, batch, alphas_cumprod)
        style = batch.get("style")
        target = predicted_images(target_model, x_r, batch["r"], batch["classes"], batch["guidance"], alphas_cumprod,
                                  style)
        clean_end = torch.full_like(batch["t"], -1)
        target = velocity_target(x_t, target, batch["t"], clean_end, alphas_cumprod)
        prediction = model(x_t, batch["t"], batch["classes"], *(style or ()), guidance=batch["guidance"],
                           target=torch.zeros(count, device=device))
        per_pair = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return per_pair, batch["kinds"]
