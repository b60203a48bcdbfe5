"""Pictures of the model: forward diffusion, the reverse process, a sample grid and the training loss curve.

All images are shown mapped from the model range [-1, 1] to [0, 1] as `clamp(x / 2 + 0.5, 0, 1)`, the same mapping
the pipeline uses for its output, so noisy x_t saturate to black and white rather than being rescaled per image.

Timesteps are labelled as in the DDPM paper: x_T (T = num_train_timesteps) is the starting noise, x_0 the image;
diffusers' timestep index k gives the noise level of x_{k+1} (`alphas_cumprod[k]`).

Samples and the reverse process come from `pipeline.sampling.generate`, so a seed shows the same images as
`fashion-ddpm generate`. Command line: `fashion-ddpm visualize` (`pipeline/cli/visualize.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .checks import check_int
from .images import labelled_grid, model_range_to_unit, to_pil
from .io import atomic_save_image
from .sampling import generate, initial_noise, plan

DEFAULT_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _pil(x) -> list[Image.Image]:
    return to_pil(model_range_to_unit(x.detach().float().cpu()))


def forward_timesteps(num_train_timesteps: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[int | None]:
    """The `add_noise` timestep index for each fraction f of T: None for f = 0 (the clean image x_0), else the index
    of x_t with t = round(f * T), i.e. round(f * T) - 1; f = 1 gives the last timestep T - 1 (x_T)."""
    steps = []
    for f in fractions:
        if not 0 <= f <= 1:
            raise ValueError(f"fractions must lie in [0, 1], got {f}")
        t = int(round(f * num_train_timesteps))
        steps.append(None if t == 0 else t - 1)
    return steps


def _noise_scheduler(pipe):
    # q(x_t | x_0) of the training schedule. DDPM / DDIM implement it in add_noise; sigma-based samplers (Euler,
    # DPM-Solver, ...) use a different parametrisation there, so they fall back to a DDPMScheduler with the same config.
    from diffusers import DDIMScheduler, DDPMScheduler

    if isinstance(pipe.scheduler, (DDPMScheduler, DDIMScheduler)):
        return pipe.scheduler
    return DDPMScheduler.from_config(pipe.scheduler.config)


def first_image_per_class(dataset, num_classes: int):
    """uint8 tensor (num_classes, H, W): the first image of every class in `dataset` (a pipeline.data.ImageDataset)."""
    import torch

    picks = []
    for c in range(num_classes):
        hits = (dataset.labels == c).nonzero()
        if len(hits) == 0:
            raise ValueError(f"dataset {dataset.source} holds no image of class {c}")
        picks.append(int(hits[0]))
    return dataset.images[torch.tensor(picks)]


def forward_diffusion_figure(pipe, images=None, fractions: Sequence[float] = DEFAULT_FRACTIONS, data_dir: str | None = None,
                             seed: int = 0, scale: int = 3) -> Image.Image:
    """Rows = classes, columns = x_t at the given fractions of T, noised with the scheduler's `add_noise`.

    Args:
        images: uint8 tensor (C, H, W), one real image per class in class order; by default the first test image of
            every class from `pipeline.data.load_dataset(data_dir, split="test")`.

    Raises:
        FileNotFoundError: Fashion-MNIST is not available (the message says how to get it).
    """
    import torch

    from .data import load_dataset, to_model_range

    names = pipe.class_names
    if images is None:
        images = first_image_per_class(load_dataset(data_dir, split="test", data_flag="--data-dir DIR"), len(names))
    if images.ndim != 3 or len(images) != len(names):
        raise ValueError(f"images must be a uint8 tensor ({len(names)}, H, W), one per class; got shape {tuple(images.shape)}")
    scheduler = _noise_scheduler(pipe)
    T = scheduler.config.num_train_timesteps
    x0 = to_model_range(images)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    columns, labels = [], []
    for f, t in zip(fractions, forward_timesteps(T, fractions)):
        if t is None:
            columns.append(x0)
            labels.append("x_0 (0%)")
        else:
            columns.append(scheduler.add_noise(x0, noise, torch.full((len(x0),), t, dtype=torch.long)))
            labels.append(f"t={t + 1} ({round(100 * f)}%)")
    cells = [_pil(c) for c in columns]
    rows = [[col[r] for col in cells] for r in range(len(names))]
    return labelled_grid(rows, names, labels, scale=scale, title=f"Forward diffusion q(x_t | x_0), T = {T} (same noise per row)")


def reverse_process_frames(pipe, class_labels=None, every: int = 10, seed: int = 0, **sampling):
    """Generates one image per class (image 0 of each, as `generate` makes it) and records x_t: the starting noise,
    after every `every`-th step, and the final image. `sampling`: `settings=` or its fields, as for `generate`.

    Returns:
        (frames, labels, samples): `frames` is a list of (B, 1, H, W) tensors in model range, `labels` the column
        labels ("t=100", "t=90", ..., "t=0"), `samples` the `pipeline.sampling.Samples` of the run.
    """
    check_int(every, "every")
    class_ids = pipe.resolve_class_ids(class_labels)
    T = pipe.scheduler.config.num_train_timesteps
    frames, labels = [], [f"t={T}"]

    def record(p, i, t, tensors):
        if (i + 1) % every == 0 and i + 1 < len(p.scheduler.timesteps):
            frames.append(tensors["latents"].detach().cpu().clone())
            labels.append(f"t={int(p.scheduler.timesteps[i + 1]) + 1}")
        return tensors

    samples = generate(pipe, class_ids, 1, seed, batch_size=len(class_ids), callback_on_step_end=record, **sampling)
    frames.insert(0, initial_noise(pipe, plan(class_ids, 1, seed)[1]))
    frames.append(samples.images * 2 - 1)
    labels.append("t=0")
    return frames, labels, samples


def reverse_process_figure(pipe, class_labels=None, every: int = 10, seed: int = 0, scale: int = 3,
                           **sampling) -> Image.Image:
    """Rows = classes (one sample each), columns = x_t from t = T (noise) every `every` steps down to x_0."""
    frames, labels, samples = reverse_process_frames(pipe, class_labels, every, seed, **sampling)
    cells = [_pil(f) for f in frames]
    rows = [[col[r] for col in cells] for r in range(len(samples))]
    title = f"Reverse process ({samples.settings.describe()}), x_t every {every} steps"
    return labelled_grid(rows, [pipe.class_names[c] for c in samples.class_ids], labels, scale=scale, title=title)


def sample_grid(pipe, num_per_class: int = 8, seed: int = 0, scale: int = 2, class_labels=None, title: str | None = None,
                **sampling) -> Image.Image:
    """Rows = classes with their names, `num_per_class` samples each (`pipeline.sampling.generate`'s seed rule)."""
    samples = generate(pipe, class_labels, num_per_class, seed, **sampling)
    rows, names = samples.rows()
    title = title or f"Samples ({samples.settings.describe()}, seed {seed})"
    return labelled_grid(rows, names, scale=scale, title=title)


STYLE_SWEEP_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)


def check_sweep_attributes(pipe, attributes):
    """ValueError naming the first attribute a style sweep asks for that the model does not take."""
    for attribute in attributes:
        if attribute not in pipe.style_attributes:
            raise ValueError(f"--style-sweep {attribute!r}: this model's style attributes are "
                             f"{pipe.style_attributes or '(none: a class-only model)'}")


def style_sweep_figure(pipe, attribute: str, levels=STYLE_SWEEP_LEVELS, class_labels=None, seed: int = 0, scale: int = 2,
                       **sampling) -> Image.Image:
    """Rows = classes, columns = one style attribute requested at each percentile of `levels` (the others free), the
    same image (seed, class, j = 0) in every column: only the request changes."""
    check_sweep_attributes(pipe, [attribute])
    columns = [generate(pipe, class_labels, 1, seed, style={attribute: level}, **sampling) for level in levels]
    cells = [c.pil() for c in columns]
    rows = [[col[r] for col in cells] for r in range(len(columns[0]))]
    names = [pipe.class_names[c] for c in columns[0].class_ids]
    return labelled_grid(rows, names, [f"{level:g}" for level in levels], scale=scale,
                         title=f"Style sweep: {attribute} percentile ({columns[0].settings.describe()}, seed {seed})")


def make_all(pipe, out_dir: str | Path, metrics: str | Path | None = None, num_per_class: int = 8, every: int = 10,
             seed: int = 0, data_dir: str | None = None, forward: bool = True, style_sweep=(), **sampling) -> dict[str, Path]:
    """Writes forward_diffusion.png, reverse_process.png, samples.png, (with `metrics`) loss_curve.png and one
    style_sweep_<attribute>.png per attribute of `style_sweep` (a style model)."""
    from .plots import plot_loss_curve, read_metrics

    if metrics is not None:
        read_metrics(metrics)  # a missing or malformed file is named before any picture is drawn
    check_sweep_attributes(pipe, style_sweep)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    if forward:
        paths["forward"] = atomic_save_image(forward_diffusion_figure(pipe, data_dir=data_dir, seed=seed),
                                             out / "forward_diffusion.png")
    paths["reverse"] = atomic_save_image(reverse_process_figure(pipe, every=every, seed=seed, **sampling),
                                         out / "reverse_process.png")
    paths["samples"] = atomic_save_image(sample_grid(pipe, num_per_class, seed, **sampling), out / "samples.png")
    if metrics is not None:
        paths["loss"] = plot_loss_curve(metrics, out / "loss_curve.png")
    sweep_sampling = {k: v for k, v in sampling.items() if k != "style"}  # a sweep sets the style itself
    for attribute in style_sweep:
        paths[f"style_sweep_{attribute}"] = atomic_save_image(style_sweep_figure(pipe, attribute, seed=seed, **sweep_sampling),
                                                              out / f"style_sweep_{attribute}.png")
    return paths
