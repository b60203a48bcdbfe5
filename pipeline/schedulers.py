"""Named diffusers samplers, each configured to be right by construction for a 100-step cosine schedule.

Every sampler here starts at the top noise level (t = T - 1) and ends on the clean image for every step count 1..T
(tests/test_schedulers.py runs each with an oracle model for all step counts). What that takes, with diffusers 0.42:

* "trailing" timesteps (Lin et al. 2023): "leading", what a DDPM config carries, starts DPM-Solver++ / UniPC at
  t = 80 for 20 steps and at t = 50 for 50 steps. The pipeline computes the trailing timesteps exactly and hands
  them to schedulers that accept a list (DDPM, DPM-Solver, Euler): diffusers' own float arithmetic gives n + 1 steps
  ending at t = -1 for n in {29, 31, 58, 62, 97}.
* UniPC and Euler-ancestral take no timestep list; where their trailing spacing goes wrong, the pipeline uses their
  "linspace" spacing for that call, which is right for those step counts (`set_timesteps` in the pipeline file).
* DPM-Solver / UniPC / Euler: `final_sigmas_type="zero"`, so the last step returns the denoised image.
* "ddim" is DDIM (eta = 0) run as DPM-Solver++ of order 1, which is the same update (Lu et al. 2022, DPM-Solver++,
  section 4): diffusers' DDIMScheduler steps to t - T // n rather than to its next timestep, which is wrong for the
  35 step counts that do not divide 100, and it cannot take a timestep list.

Samplers are addressed by name everywhere (`use_sampler`, `--scheduler`, benchmarks); class names are resolved lazily
so that the command line lists the choices without importing diffusers.
"""

from __future__ import annotations

TRAILING = {"timestep_spacing": "trailing"}
DPM = {**TRAILING, "algorithm_type": "dpmsolver++", "final_sigmas_type": "zero", "lower_order_final": True}

# name -> (diffusers class name, config overrides, default number of steps)
SAMPLERS: dict[str, tuple[str, dict, int]] = {
    "ddpm": ("DDPMScheduler", {**TRAILING}, 100),
    "ddim": ("DPMSolverMultistepScheduler", {**DPM, "solver_order": 1}, 20),
    "dpm++": ("DPMSolverMultistepScheduler", {**DPM, "solver_order": 2}, 20),
    "unipc": ("UniPCMultistepScheduler", {**TRAILING, "final_sigmas_type": "zero"}, 20),
    "euler": ("EulerDiscreteScheduler", {**TRAILING, "final_sigmas_type": "zero"}, 20),
    "euler-a": ("EulerAncestralDiscreteScheduler", {**TRAILING}, 20),
}
SAMPLER_NAMES = tuple(SAMPLERS)


def check_sampler_name(name: str):
    """A one-line ValueError unless `name` is one of the named samplers."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLER_NAMES)}")


def make_scheduler(name: str, config):
    """A new scheduler of the named sampler built from `config` (any scheduler's config: same noise schedule)."""
    import diffusers

    check_sampler_name(name)
    class_name, overrides, _ = SAMPLERS[name]
    return getattr(diffusers, class_name).from_config(config, **overrides)


def default_steps(name: str) -> int:
    """The step count a named sampler uses when none is given."""
    check_sampler_name(name)
    return SAMPLERS[name][2]


def takes_timesteps(name: str, pipe=None) -> bool:
    """Whether the named sampler's `set_timesteps` accepts a timestep list (a model's own scheduler: asked directly)."""
    import inspect

    import diffusers

    if name not in SAMPLERS:
        return pipe is not None and "timesteps" in inspect.signature(pipe.scheduler.set_timesteps).parameters
    return "timesteps" in inspect.signature(getattr(diffusers, SAMPLERS[name][0]).set_timesteps).parameters


def sampler_name(scheduler) -> str:
    """The registry name of a scheduler instance (the class's name when it is not one of ours)."""
    class_name, config = type(scheduler).__name__, scheduler.config
    for name, (cls, overrides, _) in SAMPLERS.items():
        if cls == class_name and all(config.get(k) == v for k, v in overrides.items()):
            return name
    return class_name


def use_sampler(pipe, name: str):
    """Swaps `pipe.scheduler` for the named sampler built from the same noise schedule; returns the pipeline."""
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
    return pipe
