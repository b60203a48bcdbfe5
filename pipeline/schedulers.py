"""Named diffusers samplers that can replace the training DDPMScheduler at inference time."""

from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

SAMPLERS = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
}


def use_sampler(pipe, name: str):
    """Swaps `pipe.scheduler` for the named sampler built from the same noise schedule; returns the pipeline."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    scheduler_cls, overrides = SAMPLERS[name]
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config, **overrides)
    return pipe
