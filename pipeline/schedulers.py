"""Named diffusers samplers, each configured to be right by construction for a 100-step cosine schedule.

Every sampler here starts at the top noise level (t = T - 1) and ends on the clean image for any step count 1..T
(tests/test_schedulers.py checks all samplers and all step counts). What each needs:

* `timestep_spacing="trailing"` for all: "leading" (what a DDPM config carries) starts DPM-Solver++ / UniPC at t = 80
  for 20 steps and t = 50 for 50 steps, i.e. from an image that is assumed to be a third signal while it is pure noise.
* DPM-Solver++ and UniPC: `final_sigmas_type="zero"` so the last step returns the denoised image, and
  `lambda_min_clipped` left at -inf (the cosine schedule's last log-SNR, -15.2, is a real training level).
* DDIM: `set_alpha_to_one=True` so its last step lands on alpha_bar = 1 (the clean image).

Samplers are addressed by name everywhere (`use_sampler`, `--scheduler`, benchmarks); the class names are resolved
lazily so that the command line can list the choices without importing diffusers.
"""

from __future__ import annotations

TRAILING = {"timestep_spacing": "trailing"}

# name -> (diffusers class name, config overrides, default number of steps)
SAMPLERS: dict[str, tuple[str, dict, int]] = {
    "ddpm": ("DDPMScheduler", {**TRAILING}, 100),
    "ddim": ("DDIMScheduler", {**TRAILING, "set_alpha_to_one": True}, 20),
    "dpm++": ("DPMSolverMultistepScheduler", {**TRAILING, "algorithm_type": "dpmsolver++", "solver_order": 2,
                                              "final_sigmas_type": "zero"}, 20),
    "unipc": ("UniPCMultistepScheduler", {**TRAILING, "final_sigmas_type": "zero"}, 20),
    "euler": ("EulerDiscreteScheduler", {**TRAILING}, 20),
    "euler-a": ("EulerAncestralDiscreteScheduler", {**TRAILING}, 20),
}
SAMPLER_NAMES = tuple(SAMPLERS)


def _check_name(name: str):
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLER_NAMES)}")


def make_scheduler(name: str, config):
    """A new scheduler of the named sampler built from `config` (any scheduler's config: same noise schedule)."""
    import diffusers

    _check_name(name)
    class_name, overrides, _ = SAMPLERS[name]
    return getattr(diffusers, class_name).from_config(config, **overrides)


def default_steps(name: str) -> int:
    """The step count a named sampler uses when none is given."""
    _check_name(name)
    return SAMPLERS[name][2]


def sampler_name(scheduler) -> str:
    """The registry name of a scheduler instance (the class's name when it is not one of ours)."""
    class_name = type(scheduler).__name__
    return next((name for name, (cls, _, _) in SAMPLERS.items() if cls == class_name), class_name)


def use_sampler(pipe, name: str):
    """Swaps `pipe.scheduler` for the named sampler built from the same noise schedule; returns the pipeline."""
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
    return pipe
