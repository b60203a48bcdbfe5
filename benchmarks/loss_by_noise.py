"""Where along the noise levels a model denoises well: the unweighted training loss (MSE to the model's target, v or
the noise) on real test images at each of --timesteps, for several models on the same images, noise and timesteps.

A loss weighting moves capacity between noise levels; FID alone does not say where. A style model is scored twice:
with no attribute given (style=None, what the class-only comparison sees) and with each image's own measured
attributes (its class's percentiles, where measurable). Lower is better; rows are comparable only within one run.

  python -m benchmarks.loss_by_noise --model pretrained/fashion-ddpm-gpu --model runs/default-style-at-2100 --threads 2
  python -m benchmarks.loss_by_noise --smoke
"""

from __future__ import annotations

from benchmarks.harness import RESULTS, benchmark_pipeline, emit, markdown_table, parser, torch_machine
from pipeline.checks import comma_separated

NAME = "loss_by_noise"
TIMESTEPS = [5, 20, 40, 60, 80, 95]
BATCH = 250


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model="several", threads=True, seed=0, out=RESULTS,
               smoke="tiny random model, 20 random images, timesteps 10 and 90")
    p.add_argument("--timesteps", type=comma_separated(int, "integers", "5,20,95"), default=None,
                   help=f"the timesteps scored (default {','.join(map(str, TIMESTEPS))}; each below the model's T)")
    p.add_argument("--num-images", type=int, default=1000, help="test images, the first of a seeded shuffle (default 1000)")
    p.add_argument("--name", default=NAME, help="result file name (default %(default)s)")
    args = p.parse_args(argv)
    if args.smoke:
        args.num_images, args.timesteps = 20, [10, 90]
    args.timesteps = args.timesteps or TIMESTEPS
    if args.num_images < 1 or any(t < 0 for t in args.timesteps):
        raise SystemExit(f"error: --num-images ({args.num_images}) must be >= 1 and --timesteps ({args.timesteps}) >= 0")
    return args


def test_images(args):
    """(images in the model's range, labels, uint8 images) of the scored test images."""
    import torch

    from pipeline.data import load_dataset, to_model_range

    g = torch.Generator().manual_seed(args.seed)
    if args.smoke:
        uint8 = torch.randint(0, 256, (args.num_images, 28, 28), generator=g, dtype=torch.uint8)
        return to_model_range(uint8), torch.arange(args.num_images) % 10, uint8
    test = load_dataset(None, split="test")
    rows = torch.randperm(len(test.images), generator=g)[:args.num_images]
    return to_model_range(test.images[rows]), test.labels[rows], test.images[rows]


def own_style(pipe, uint8, labels):
    """(values, given) of each image's own attributes as its class's percentiles (not given where unmeasurable)."""
    from pipeline.training.style import image_percentiles

    values = image_percentiles(pipe.condition_encoder, uint8, labels)
    return values.nan_to_num(0.0), (~values.isnan()).float()


def losses(pipe, images, labels, noise, timesteps, style=None) -> list[float]:
    """The mean unweighted loss at each timestep."""
    import torch

    scheduler, out = pipe.scheduler, []
    for t in timesteps:
        steps = torch.full((len(images),), t)
        # from alphas_cumprod: a sampler's scheduler (UniPC, ...) has no add_noise / get_velocity
        alpha, sigma = scheduler.alphas_cumprod[t].sqrt(), (1 - scheduler.alphas_cumprod[t]).sqrt()
        noisy = alpha * images + sigma * noise
        target = noise if scheduler.config.prediction_type == "epsilon" else alpha * noise - sigma * images
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(images), BATCH):
                part = slice(i, i + BATCH)
                condition = pipe.condition(labels[part], None if style is None else tuple(s[part] for s in style))
                prediction = pipe.unet(noisy[part], steps[part], class_labels=condition).sample
                total += float(((prediction.float() - target[part]) ** 2).mean(dim=(1, 2, 3)).sum())
        out.append(total / len(images))
    return out


def main(argv=None):
    args = parse_args(argv)
    import torch

    machine = torch_machine(args.threads)
    images, labels, uint8 = test_images(args)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(args.seed + 1))
    rows = []
    for model in args.model or [None]:
        pipe, name = benchmark_pipeline(model, args.smoke, sampler="unipc")  # smoke: the shipped models' scheduler
        if max(args.timesteps) >= pipe.scheduler.config.num_train_timesteps:
            raise SystemExit(f"error: --timesteps {args.timesteps} must be below {name}'s "
                             f"{pipe.scheduler.config.num_train_timesteps} training steps")
        rows.append({"model": name, "style": "none", "loss": losses(pipe, images, labels, noise, args.timesteps)})
        if pipe.style_attributes:
            style = own_style(pipe, uint8, labels)
            rows.append({"model": name, "style": "own", "loss": losses(pipe, images, labels, noise, args.timesteps, style)})
        print(f"  {name}: done", flush=True)
    result = {"timesteps": args.timesteps, "num_images": args.num_images, "seed": args.seed, "rows": rows,
              "smoke": args.smoke, "machine": machine}
    emit(f"{args.name}_smoke" if args.smoke else args.name, result, to_markdown(result), args)
    return result


def to_markdown(result: dict) -> str:
    """One row per model and style, one column per timestep; each loss beside the first row's at that timestep."""
    first = result["rows"][0]["loss"]
    body = [[f"`{r['model']}`", r["style"]] + [f"{v:.4f} ({v / b:.3f}×)" for v, b in zip(r["loss"], first)]
            for r in result["rows"]]
    header = ["model", "style given"] + [f"t = {t}" for t in result["timesteps"]]
    return (f"Unweighted loss on {result['num_images']:,} test images (seed {result['seed']}), each beside the first "
            f"row's at the same timestep:\n\n" + markdown_table(header, body))


if __name__ == "__main__":
    main()
