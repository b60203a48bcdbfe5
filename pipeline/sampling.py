"""The one way this project generates images of given classes: `generate`, with one seed rule.

Image j of class c (the j-th image of that class in a request, counted from `start_index`) starts from
`torch.Generator().manual_seed(image_seed(seed, c, j))`, and the same generator drives the sampler's noise. So an
image depends only on (model, sampler settings, seed, class, j): not on the batch size, on which other classes are
requested, or on the command. `fashion-ddpm generate`, `evaluate`, `evaluate-clip`, `best-of-n`, `visualize`,
`synthesize`, the demo and training's sample grids all call `generate`, so a `--seed` means the same image everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

SEED_STRIDE = 1_000_000  # seeds of class c are seed + c * SEED_STRIDE + j: unique while j < SEED_STRIDE
# Keyword options of `generate` besides `sampler`, passed on to the pipeline call.
SAMPLING_OPTIONS = ("num_inference_steps", "guidance_scale", "guidance_interval", "guidance_rescale")
EVERY_STEP = (0.0, 1.0)  # the guidance interval that guides at every noise level


def image_seed(seed: int, class_id: int, index: int) -> int:
    """The generator seed of image `index` of class `class_id` for a run seeded with `seed`."""
    return seed + SEED_STRIDE * class_id + index


@dataclass
class Samples:
    """Generated images, label-major, with what made each one."""

    images: torch.Tensor  # noqa: F821  (N, 1, H, W) float in [0, 1], on the CPU
    class_ids: list[int]
    seeds: list[int]
    class_names: list[str]
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)  # sampler, steps, guidance_scale, ... as used

    def __len__(self) -> int:
        return len(self.class_ids)

    def pil(self):
        from .images import to_pil

        return to_pil(self.images)

    def rows(self) -> tuple[list[list], list[str]]:
        """PIL images grouped by class in request order, and the row labels (for `images.labelled_grid`)."""
        pil = self.pil()
        order = list(dict.fromkeys(self.class_ids))
        return [[im for im, c in zip(pil, self.class_ids) if c == k] for k in order], [self.class_names[k] for k in order]


def plan(class_ids: list[int], per_label: int, seed: int, start_index: int = 0) -> tuple[list[int], list[int]]:
    """Class id and seed of every image of a request (label-major); a class named twice continues its numbering."""
    ids, seeds, count = [], [], {}
    for c in class_ids:
        first = start_index + count.get(c, 0)
        ids += [c] * per_label
        seeds += [image_seed(seed, c, first + j) for j in range(per_label)]
        count[c] = count.get(c, 0) + per_label
    return ids, seeds


def sampling_settings(pipe, sampler: str | None = None, num_inference_steps: int | None = None,
                      guidance_scale: float | None = None, **extra) -> dict:
    """The settings `generate` will use, with the pipeline's and the sampler's defaults filled in."""
    from .schedulers import default_steps, sampler_name

    unknown = sorted(set(extra) - set(SAMPLING_OPTIONS))
    if unknown:  # here, not in each caller: every path to the pipeline call goes through these settings
        raise TypeError(f"unknown sampling option(s) {', '.join(unknown)}; accepted: sampler, {', '.join(SAMPLING_OPTIONS)}")
    if num_inference_steps is None:
        num_inference_steps = default_steps(sampler) if sampler else (
            pipe.config.get("default_num_inference_steps") or pipe.scheduler.config.num_train_timesteps)
    if guidance_scale is None:
        from .pipeline_fashion_ddpm import DEFAULT_GUIDANCE_SCALE

        guidance_scale = pipe.config.get("default_guidance_scale")
        guidance_scale = DEFAULT_GUIDANCE_SCALE if guidance_scale is None else guidance_scale
    interval = extra.pop("guidance_interval", None)
    if interval is None:
        interval = pipe.config.get("default_guidance_interval")
    settings = {"sampler": sampler or sampler_name(pipe.scheduler), "num_inference_steps": num_inference_steps,
                "guidance_scale": guidance_scale, **extra}
    # Resolved settings name the interval whenever there is guidance, (0, 1) for every step, so that replaying them
    # (`generate(pipe, **settings)`) can never pick up a model's default instead; w = 0 or 1 has nothing to limit.
    if guidance_scale not in (0, 1):
        settings["guidance_interval"] = tuple(EVERY_STEP if interval is None else interval)
    return settings


def every_step(interval) -> bool:
    """Whether a guidance interval guides at every noise level: None (no interval) or (0, 1)."""
    return interval is None or tuple(map(float, interval)) == EVERY_STEP


def guidance_text(settings: dict) -> str:
    """'guidance 2' or 'guidance 2 for t/T in [0.17, 0.88]': how titles, cards and reports name the guidance used."""
    text = f"guidance {float(settings['guidance_scale']):g}"
    interval = settings.get("guidance_interval")
    if not every_step(interval):
        text += f" for t/T in [{float(interval[0]):g}, {float(interval[1]):g}]"
    if settings.get("guidance_rescale"):
        text += f", rescale {float(settings['guidance_rescale']):g}"
    return text


def pipeline_call_kwargs(settings: dict) -> dict:
    """The pipeline `__call__` keywords of resolved settings: every option explicit, so that the model's own
    defaults cannot fill in something the settings left out (no interval = every step)."""
    kwargs = {k: v for k, v in settings.items() if k != "sampler"}
    kwargs["guidance_interval"] = tuple(settings.get("guidance_interval") or EVERY_STEP)
    return kwargs


def generate(pipe, labels=None, per_label: int = 1, seed: int = 0, batch_size: int = 100, *,
             sampler: str | None = None, start_index: int = 0,
             progress: Callable[[int, int], None] | None = None,
             callback_on_step_end: Callable | None = None, **sampling) -> Samples:
    """Generates `per_label` images of each entry of `labels` (ids or names; None = every class), label-major.

    Args:
        pipe: a `FashionDDPMPipeline`.
        seed / start_index: image j of class c uses `image_seed(seed, c, start_index + j)`.
        batch_size: images per pipeline call (does not change the images).
        sampler: a name from `pipeline.schedulers.SAMPLERS` to sample with (None: the pipeline's own scheduler);
            the pipeline's scheduler is restored afterwards.
        progress: called as progress(images_done, images_total) after every batch.
        callback_on_step_end: passed to the pipeline (see its `__call__`), e.g. to record the reverse process.
        **sampling: `guidance_scale`, `num_inference_steps`, `guidance_interval`, `guidance_rescale` (see the
            pipeline's `__call__`); unset ones take the model's (or the named sampler's) defaults.

    Raises:
        ValueError: bad labels, counts or settings, before any image is generated.
    """
    import torch

    from .schedulers import make_scheduler

    for name, value, low in (("per_label", per_label, 1), ("batch_size", batch_size, 1), ("start_index", start_index, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if start_index + per_label > SEED_STRIDE:
        raise ValueError(f"at most {SEED_STRIDE:,} images per class and seed; got start_index + per_label = "
                         f"{start_index + per_label:,}")
    class_ids = pipe.resolve_class_ids(labels)
    settings = sampling_settings(pipe, sampler, **sampling)
    call_kwargs = pipeline_call_kwargs(settings)
    ids, seeds = plan(class_ids, per_label, seed, start_index)
    original = pipe.scheduler
    if sampler is not None:
        pipe.scheduler = make_scheduler(sampler, original.config)
    chunks, start = [], time.perf_counter()
    try:
        # One cheap call validates every setting before any U-Net work (the pipeline checks its inputs first).
        pipe._check_inputs(1, _plain_number(call_kwargs["guidance_scale"]), call_kwargs["num_inference_steps"], "pt",
                           None, 1, call_kwargs.get("guidance_interval"), call_kwargs.get("guidance_rescale", 0.0))
        for lo in range(0, len(ids), batch_size):
            generators = [torch.Generator().manual_seed(s) for s in seeds[lo:lo + batch_size]]
            out = pipe(class_labels=ids[lo:lo + batch_size], generator=generators, output_type="pt",
                       callback_on_step_end=callback_on_step_end, **call_kwargs).images
            chunks.append(out.float().cpu())
            if progress is not None:
                progress(min(lo + batch_size, len(ids)), len(ids))
    finally:
        pipe.scheduler = original
    return Samples(torch.cat(chunks), ids, seeds, list(pipe.class_names), time.perf_counter() - start, settings)


def initial_noise(pipe, seeds: list[int]):
    """x_T of the images with these seeds, as `generate` draws it (before the scheduler's `init_noise_sigma`)."""
    import torch

    config = pipe.unet.config
    shape = (1, config.in_channels, config.sample_size, config.sample_size)
    return torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])


def _plain_number(value):
    return value.item() if hasattr(value, "item") else value
