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

from .checks import check_int
from .settings import SamplingSettings

SEED_STRIDE = 1_000_000  # seeds of class c are seed + c * SEED_STRIDE + j: unique while j < SEED_STRIDE


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
    settings: SamplingSettings  # as used: replaying them (`generate(pipe, ..., settings=s)`) makes the same images
    seconds: float = 0.0
    style: dict = field(default_factory=dict)  # a style model's request as parsed: {attribute: percentile}; {} = none

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


def generate(pipe, labels=None, per_label: int = 1, seed: int = 0, batch_size: int = 100, *,
             settings: SamplingSettings | None = None, start_index: int = 0, style=None,
             progress: Callable[[int, int], None] | None = None,
             callback_on_step_end: Callable | None = None, **overrides) -> Samples:
    """Generates `per_label` images of each entry of `labels` (ids or names; None = every class), label-major.

    Args:
        pipe: a `FashionDDPMPipeline`.
        seed / start_index: image j of class c uses `image_seed(seed, c, start_index + j)`.
        batch_size: images per pipeline call (does not change the images).
        settings: how to sample (`SamplingSettings`); None = `SamplingSettings.resolve(pipe, **overrides)`, i.e. the
            model's defaults for whatever `overrides` (sampler, steps, guidance, interval, rescale) leave out. A named
            sampler other than the pipeline's own is swapped in for the call and the original restored afterwards.
        style: a style model's request for every image (descriptor words or {attribute: percentile}; see the
            pipeline's `__call__`); it does not change the starting noise (the seed rule holds whatever the style).
        progress: called as progress(images_done, images_total) after every batch.
        callback_on_step_end: passed to the pipeline (see its `__call__`), e.g. to record the reverse process.

    Raises:
        ValueError: bad labels, counts or settings, before any image is generated.
    """
    import torch

    from .schedulers import make_scheduler, sampler_name

    for name, value, low in (("per_label", per_label, 1), ("batch_size", batch_size, 1), ("start_index", start_index, 0)):
        check_int(value, name, low)
    if start_index + per_label > SEED_STRIDE:
        raise ValueError(f"at most {SEED_STRIDE:,} images per class and seed; got start_index + per_label = "
                         f"{start_index + per_label:,}")
    class_ids = pipe.resolve_class_ids(labels)
    settings = resolve_settings(pipe, settings, overrides).check(pipe)
    requested = pipe.parse_style(style)  # bad style input: one line, before any U-Net work
    call_kwargs = settings.pipeline_arguments()
    ids, seeds = plan(class_ids, per_label, seed, start_index)
    original = pipe.scheduler
    if settings.sampler != sampler_name(original):
        pipe.scheduler = make_scheduler(settings.sampler, original.config)
    chunks, start = [], time.perf_counter()
    try:
        for lo in range(0, len(ids), batch_size):
            generators = [torch.Generator().manual_seed(s) for s in seeds[lo:lo + batch_size]]
            out = pipe(class_labels=ids[lo:lo + batch_size], generator=generators, output_type="pt",
                       callback_on_step_end=callback_on_step_end, style=requested or None, **call_kwargs).images
            chunks.append(out.float().cpu())
            if progress is not None:
                progress(min(lo + batch_size, len(ids)), len(ids))
    finally:
        pipe.scheduler = original
    return Samples(torch.cat(chunks), ids, seeds, list(pipe.class_names), settings, time.perf_counter() - start,
                   requested)


def style_text(style: dict) -> str:
    """'width 0.9, pattern 0.1': how titles and records name a parsed style request ('' for none)."""
    return ", ".join(f"{a} {v:g}" for a, v in style.items())


def resolve_settings(pipe, settings: SamplingSettings | None, overrides: dict) -> SamplingSettings:
    """`settings`, or the model's defaults with `overrides`; TypeError for an option `SamplingSettings` has not."""
    from .settings import FIELDS

    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise TypeError(f"unknown sampling option(s) {', '.join(unknown)}; accepted: settings=SamplingSettings(...) or "
                        f"{', '.join(FIELDS)}")
    if settings is not None and overrides:
        raise TypeError(f"pass settings=... or the options {sorted(overrides)}, not both")
    return settings if settings is not None else SamplingSettings.resolve(pipe, **overrides)


def initial_noise(pipe, seeds: list[int]):
    """x_T of the images with these seeds, as `generate` draws it (before the scheduler's `init_noise_sigma`)."""
    import torch

    config = pipe.unet.config
    shape = (1, config.in_channels, config.sample_size, config.sample_size)
    return torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])

