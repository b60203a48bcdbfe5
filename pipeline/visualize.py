"""Pictures of the model: forward diffusion, the reverse process, a sample grid and the training loss curve.

All images are shown mapped from the model range [-1, 1] to [0, 1] as `clamp(x / 2 + 0.5, 0, 1)`, the same mapping
the pipeline uses for its output, so noisy x_t saturate to black and white rather than being rescaled per image.

Timesteps are labelled as in the DDPM paper: x_T (T = num_train_timesteps) is the starting noise, x_0 the image;
diffusers' timestep index k gives the noise level of x_{k+1} (`alphas_cumprod[k]`).

Command line: `fashion-ddpm visualize --model DIR [--metrics runs/x/metrics.jsonl] --out DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image

DEFAULT_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _to_unit(x):
    """Model range [-1, 1] -> [0, 1] (clamped), the pipeline's own output mapping."""
    return (x / 2 + 0.5).clamp(0, 1)


def _pil(x) -> list[Image.Image]:
    from .grid import to_pil

    return to_pil(_to_unit(x.detach().float().cpu()))


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
    from .grid import labelled_grid

    names = pipe.class_names
    if images is None:
        images = first_image_per_class(load_dataset(data_dir, split="test"), len(names))
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


def reverse_process_frames(pipe, class_labels=None, num_inference_steps: int | None = None, every: int = 10,
                           guidance_scale: float | None = None, seed: int = 0):
    """Runs the pipeline once and records x_t: the starting noise, after every `every`-th step, and the final image.

    Returns:
        (frames, labels, output): `frames` is a list of (B, 1, H, W) tensors in model range, `labels` the column
        labels ("t=100", "t=90", ..., "t=0"), `output` the pipeline's images as a (B, 1, H, W) tensor in [0, 1].
    """
    import torch

    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    class_ids = pipe._resolve_class_ids(class_labels)
    T = pipe.scheduler.config.num_train_timesteps
    n_steps = T if num_inference_steps is None else num_inference_steps
    config = pipe.unet.config
    shape = (1, config.in_channels, config.sample_size, config.sample_size)
    # One generator per image (seed + i) for the starting noise and the sampler's noise: the run is the same as
    # pipe(class_labels, generator=[Generator().manual_seed(seed + i) ...]) and so reproducible row by row.
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(class_ids))]
    latents = torch.cat([torch.randn(shape, generator=g) for g in generators])
    frames = [latents * pipe.scheduler.init_noise_sigma]
    labels = [f"t={T}"]

    def record(p, i, t, tensors):
        if (i + 1) % every == 0 and i + 1 < n_steps:
            frames.append(tensors["latents"].detach().cpu().clone())
            labels.append(f"t={int(p.scheduler.timesteps[i + 1]) + 1}")
        return tensors

    kwargs = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
    output = pipe(class_labels=class_ids, latents=latents, generator=generators, num_inference_steps=n_steps, output_type="pt",
                  callback_on_step_end=record, **kwargs).images
    frames.append(output.cpu() * 2 - 1)
    labels.append("t=0")
    return frames, labels, output


def reverse_process_figure(pipe, class_labels=None, num_inference_steps: int | None = None, every: int = 10,
                           guidance_scale: float | None = None, seed: int = 0, scale: int = 3) -> Image.Image:
    """Rows = classes (one sample each), columns = x_t from t = T (noise) every `every` steps down to x_0."""
    from .grid import labelled_grid

    frames, labels, output = reverse_process_frames(pipe, class_labels, num_inference_steps, every, guidance_scale, seed)
    class_ids = pipe._resolve_class_ids(class_labels)
    cells = [_pil(f) for f in frames]
    rows = [[col[r] for col in cells] for r in range(len(class_ids))]
    n_steps = num_inference_steps or pipe.scheduler.config.num_train_timesteps
    title = f"Reverse process ({type(pipe.scheduler).__name__}, {n_steps} steps), x_t every {every} steps"
    return labelled_grid(rows, [pipe.class_names[c] for c in class_ids], labels, scale=scale, title=title)


def sample_grid(pipe, num_per_class: int = 8, seed: int = 0, scale: int = 2, **sampling) -> Image.Image:
    """Rows = classes with their names, `num_per_class` samples each (image j of class c uses seed + c * n + j)."""
    import torch

    from .grid import labelled_grid

    if num_per_class < 1:
        raise ValueError(f"num_per_class must be >= 1, got {num_per_class}")
    names = pipe.class_names
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(names) * num_per_class)]
    images = pipe(class_labels=list(range(len(names))), num_images_per_label=num_per_class, generator=generators, **sampling).images
    rows = [images[c * num_per_class:(c + 1) * num_per_class] for c in range(len(names))]
    guidance = sampling.get("guidance_scale")
    title = "Samples" + (f" (guidance {guidance:g})" if guidance is not None else "")
    return labelled_grid(rows, names, scale=scale, title=title)


def make_all(pipe, out_dir: str | Path, metrics: str | Path | None = None, num_per_class: int = 8, every: int = 10,
             seed: int = 0, data_dir: str | None = None, forward: bool = True, **sampling) -> dict[str, Path]:
    """Writes forward_diffusion.png, reverse_process.png, samples.png and (with `metrics`) loss_curve.png."""
    from .plots import plot_loss_curve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if metrics is not None and not Path(metrics).is_file():
        raise FileNotFoundError(f"metrics file {metrics} does not exist (expected a run's metrics.jsonl)")
    paths = {}
    if forward:
        paths["forward"] = out / "forward_diffusion.png"
        forward_diffusion_figure(pipe, data_dir=data_dir, seed=seed).save(paths["forward"])
    paths["reverse"] = out / "reverse_process.png"
    reverse_process_figure(pipe, num_inference_steps=sampling.get("num_inference_steps"), every=every,
                           guidance_scale=sampling.get("guidance_scale"), seed=seed).save(paths["reverse"])
    paths["samples"] = out / "samples.png"
    sample_grid(pipe, num_per_class, seed, **sampling).save(paths["samples"])
    if metrics is not None:
        paths["loss"] = plot_loss_curve(metrics, out / "loss_curve.png")
    return paths


def cmd_visualize(args):
    from .cli import load_pipeline, sampling_kwargs

    if args.num_per_class < 1 or args.every < 1:
        raise SystemExit("error: --num-per-class and --every must be >= 1")
    pipe = load_pipeline(args.model, args.scheduler)
    try:
        paths = make_all(pipe, args.out, args.metrics, args.num_per_class, args.every, args.seed, args.data_dir,
                         forward=not args.no_forward, **sampling_kwargs(args))
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}\n(use --no-forward to skip the forward-diffusion figure that needs the data)"
                         if "Fashion-MNIST" in str(e) else f"error: {e}")
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def register(subparsers):
    """Adds `visualize` to the `fashion-ddpm` command line."""
    from .cli import add_sampling_args

    vis = subparsers.add_parser("visualize", help="forward/reverse diffusion pictures, a sample grid and the loss curve")
    add_sampling_args(vis)
    vis.add_argument("--metrics", default=None, help="a run's metrics.jsonl for the loss curve (skipped when absent)")
    vis.add_argument("--out", default="figures", help="output folder")
    vis.add_argument("--num-per-class", type=int, default=8, help="samples per class in samples.png")
    vis.add_argument("--every", type=int, default=10, help="show x_t every this many steps in reverse_process.png")
    vis.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    vis.add_argument("--no-forward", action="store_true", help="skip forward_diffusion.png (needs the test set)")
    vis.set_defaults(func=cmd_visualize)
