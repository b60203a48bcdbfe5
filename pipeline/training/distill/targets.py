"""What the student learns from a pair of recorded states: the velocity whose DDIM step lands on the teacher's next
state (trajectory distillation), or on the image the student itself predicts from it (consistency distillation);
and which pairs a batch draws."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...pipeline_fashion_ddpm import trailing_timesteps
from .config import DistillConfig
from .trajectories import recorded_positions


def alpha_sigma(alphas_cumprod, t):
    """(alpha_t, sigma_t) of timesteps `t`; t = -1 is the clean image (alpha 1, sigma 0)."""
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

    def __init__(self, config: DistillConfig, T: int, data: dict):
        self.data, self.method = data, config.method
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
        if self.weights is None:
            which = torch.randint(len(self.pairs), (count,), generator=generator)
        else:
            which = torch.multinomial(torch.tensor(self.weights), count, replacement=True, generator=generator)
        picks = [(*self.pairs[int(k)][int(torch.randint(len(self.pairs[int(k)]), (1,), generator=generator))], int(k))
                 for k in which]
        trajectories = torch.randint(num_trajectories, (count,), generator=generator)
        return trajectories, torch.tensor(picks)

    def __len__(self) -> int:
        return len(self.data["seeds"])

    def losses(self, model, target_model, count: int, generator, alphas_cumprod, progress: float):
        """A batch of `count` pairs: each pair's loss (`pair_losses`) and the index of its group. (`progress`, the
        run's fraction done, is for the interface `tuning.TuningPairs` shares.)"""
        rows, picks = self.draw(count, len(self), generator)
        per_pair = pair_losses(model, target_model, self.data, rows, picks, self.method, alphas_cumprod)
        return per_pair, picks[:, 4].to(alphas_cumprod.device)


def pair_losses(model, target_model, data: dict, rows, picks, method: str, alphas_cumprod):
    """Each drawn pair's loss (velocity MSE, on the device of `alphas_cumprod`): `rows` index the trajectories in
    `data`, `picks` are `PairSampler.draw`'s; `target_model` (the same weights, without a training wrapper) makes a
    consistency student's targets."""
    device, T = alphas_cumprod.device, len(alphas_cumprod)
    states = data["states"][rows]
    x_from = states[torch.arange(len(rows)), picks[:, 0]].to(device)
    x_to = states[torch.arange(len(rows)), picks[:, 1]].to(device)
    t_from, t_to = picks[:, 2].to(device), picks[:, 3].to(device)
    classes, guidance = data["class_ids"][rows].to(device), data["guidance"][rows].to(device)
    levels = (t_to.float() + 1) / T  # the noise level the step lands on (0: the clean image)
    # a style teacher's trajectories carry the request each was sampled with, (values, given) per image
    style = tuple(data[k][rows].to(device) for k in ("style_values", "style_given")) if "style_values" in data else None
    if method == "consistency":  # land on the image the student predicts from the teacher's next state
        x_to = predicted_images(target_model, x_to, t_to, classes, guidance, alphas_cumprod, style)
        t_to = torch.full_like(t_to, -1)
    target = velocity_target(x_from, x_to, t_from, t_to, alphas_cumprod)
    prediction = model(x_from, t_from, classes, *(style or ()), guidance=guidance, target=levels)
    return F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))


def predicted_images(model, x, t, classes, guidance, alphas_cumprod, style: tuple | None = None):
    """The consistency target: the image the student (without gradient: its own weights, as improved consistency
    training does, Song & Dhariwal 2023) predicts from each state; a state at t = -1 is already the image. `style`:
    (values, given) of a style teacher's requests."""
    images, inner = x.clone(), t >= 0
    if inner.any():
        styled = () if style is None else tuple(part[inner] for part in style)
        with torch.no_grad():
            v = model(x[inner], t[inner], classes[inner], *styled, guidance=guidance[inner],
                      target=torch.zeros(int(inner.sum()), device=x.device)).float()
        a, s = (u.view(-1, 1, 1, 1) for u in alpha_sigma(alphas_cumprod, t[inner]))
        images[inner] = (a * x[inner] - s * v).to(images.dtype)
    return images

