"""Every named sampler, every step count 1..T: starts at the top noise level and ends on the clean image.

An oracle model that knows the clean image x0 predicts the exact noise (or velocity) for any input; with it, every
sampler must return x0 itself when its last step lands at zero noise, whatever its order or randomness.
"""

import pytest
import torch

from pipeline.pipeline_fashion_ddpm import DEFAULT_SCHEDULER_CONFIG, set_timesteps
from pipeline.schedulers import SAMPLERS, make_scheduler

T = DEFAULT_SCHEDULER_CONFIG["num_train_timesteps"]


def _oracle_run(scheduler, x0: torch.Tensor, steps: int, prediction_type: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    set_timesteps(scheduler, steps)  # what the pipeline calls
    alphas = scheduler.alphas_cumprod.double()
    x = torch.randn(x0.shape, generator=g, dtype=torch.float64) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)  # sigma-space samplers feed sqrt(a) x0 + sqrt(1-a) eps
        a = alphas[int(round(float(t)))]
        eps = (model_input - a.sqrt() * x0) / (1 - a).sqrt()
        out = eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
        kwargs = {"generator": g} if "generator" in scheduler.step.__code__.co_varnames else {}
        x = scheduler.step(out, t, x, **kwargs).prev_sample
    return x


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_starts_at_the_top_and_ends_clean_for_every_step_count(name, prediction_type):
    base = make_scheduler("ddpm", {**DEFAULT_SCHEDULER_CONFIG, "prediction_type": prediction_type})
    x0 = torch.linspace(-0.9, 0.9, 2 * 3 * 3, dtype=torch.float64).reshape(2, 1, 3, 3)
    for steps in range(1, T + 1):
        scheduler = make_scheduler(name, base.config)
        set_timesteps(scheduler, steps)
        timesteps = [float(t) for t in scheduler.timesteps]
        assert len(timesteps) == steps and timesteps[0] == T - 1, (name, steps, timesteps[:3])
        assert all(a > b for a, b in zip(timesteps, timesteps[1:])), (name, steps)
        out = _oracle_run(make_scheduler(name, base.config), x0, steps, prediction_type)
        torch.testing.assert_close(out, x0, atol=2e-3, rtol=0, msg=f"{name} with {steps} steps does not end clean")


def test_diffusers_ddim_is_inexact_off_divisors_so_the_pipeline_warns(caplog):
    """Why "ddim" is DPM-Solver++ of order 1: diffusers' DDIMScheduler steps to t - T // n, its next timestep only
    when n divides T. The pipeline warns when a user swaps it in with another step count."""
    from diffusers import DDIMScheduler
    from diffusers.utils import logging as dlogging

    scheduler = DDIMScheduler.from_config(DEFAULT_SCHEDULER_CONFIG)
    for steps in (1, 2, 4, 5, 10, 20, 25, 50, 100):
        scheduler.set_timesteps(steps)
        ts = scheduler.timesteps.tolist()
        assert [t - T // steps for t in ts] == ts[1:] + [-1], steps
    scheduler.set_timesteps(30)
    ts = scheduler.timesteps.tolist()
    assert [t - T // 30 for t in ts] != ts[1:] + [-1]
    dlogging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            set_timesteps(scheduler, 30)
    finally:
        dlogging.disable_propagation()
    assert "DDIMScheduler steps to t - 3" in caplog.text


def test_user_swapped_schedulers_are_made_exact_too():
    """`UniPCMultistepScheduler.from_config(pipe.scheduler.config)` with diffusers' own trailing arithmetic gives 30
    timesteps for 29 steps; the pipeline's set_timesteps corrects it."""
    from diffusers import EulerAncestralDiscreteScheduler, UniPCMultistepScheduler

    for cls in (UniPCMultistepScheduler, EulerAncestralDiscreteScheduler):
        scheduler = cls.from_config(DEFAULT_SCHEDULER_CONFIG)
        scheduler.set_timesteps(29)
        assert len(scheduler.timesteps) == 30  # the diffusers behaviour this works around
        set_timesteps(scheduler, 29)
        assert len(scheduler.timesteps) == 29 and int(scheduler.timesteps[0]) == T - 1
        assert scheduler.config.timestep_spacing == "trailing"  # the user's config is left as it was


def test_saved_config_makes_any_swapped_scheduler_start_at_the_top():
    """A diffusers user's `XScheduler.from_config(pipe.scheduler.config)` inherits trailing spacing."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

    from pipeline.models import DEFAULT_MODEL

    saved = make_scheduler("ddpm", DEFAULT_SCHEDULER_CONFIG).config
    if (DEFAULT_MODEL / "scheduler" / "scheduler_config.json").is_file():
        from diffusers import DDPMScheduler

        saved = DDPMScheduler.from_pretrained(DEFAULT_MODEL, subfolder="scheduler").config
    assert saved.timestep_spacing == "trailing"
    for cls in (DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, EulerDiscreteScheduler):
        for steps in (5, 20, 50):
            scheduler = cls.from_config(saved)
            scheduler.set_timesteps(steps)
            assert int(scheduler.timesteps[0]) == T - 1, (cls.__name__, steps)


def test_unknown_sampler_is_named():
    with pytest.raises(ValueError, match="unknown sampler 'plms'; choose one of"):
        make_scheduler("plms", DEFAULT_SCHEDULER_CONFIG)
