"""How well a style model does what a style request asks: requested vs measured percentile, per class and attribute.

For each attribute of the model and each level of --levels (default 0.1, 0.5, 0.9), --num-per-class images of every
class are generated with only that attribute requested (the others free), with the same seeds at every level (image j
of class c uses seed + 1,000,000·c + j, whatever the style), so the levels differ only by the request. Every image is
measured with `pipeline.style.attributes.measure` (the definition training used) and each measurement turned into
its percentile within its class with the model's own tables (the training set's). Reported per attribute (mean over
the classes, and per class):

  spearman    Spearman ρ between requested and measured percentile of the requested attribute (pooled over levels)
  mae         mean |measured − requested| percentile
  leakage     for every other attribute b: how far its median percentile moves from the lowest to the highest level,
              minus how far it moves in real test images of the class whose requested attribute lies within ±0.1 of
              those levels (width and area move together in real clothes too; only movement beyond the real data's
              is leakage)

  python -m benchmarks.style_control --model pretrained/fashion-ddpm-style --num-per-class 30 --threads 2
  python -m benchmarks.style_control --smoke
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import RESULTS, emit, markdown_table, parser, repo_relative, torch_machine

NAME = "style_control"
WINDOW = 0.1  # real images whose attribute percentile lies within this of a level stand for that level


def parse_args(argv=None):
    p = parser(NAME, __doc__, model=True, model_default="pretrained/fashion-ddpm-style", threads=True, seed=0,
               out=RESULTS, smoke="a tiny random style model, 2 images per class and level")
    p.add_argument("--num-per-class", type=int, default=30, help="images per class and level (default 30)")
    p.add_argument("--levels", default="0.1,0.5,0.9", help="requested percentiles (default 0.1,0.5,0.9)")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    p.add_argument("--name", default=NAME)
    args = p.parse_args(argv)
    args.levels = [float(x) for x in args.levels.split(",")]
    if args.num_per_class < 2 or len(args.levels) < 2 or not all(0 <= x <= 1 for x in args.levels):
        raise SystemExit("error: --num-per-class must be >= 2 and --levels at least two percentiles in [0, 1]")
    return args


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = ~(np.isnan(x) | np.isnan(y))
    return float(spearmanr(x[ok], y[ok]).statistic) if ok.sum() > 2 and np.ptp(y[ok]) > 0 else float("nan")


def smoke_model():
    import torch

    from benchmarks.harness import TINY_UNET
    from pipeline import FashionDDPMPipeline
    from pipeline.condition_encoder import FashionConditionEncoder
    from pipeline.style.attributes import ATTRIBUTES

    torch.manual_seed(0)
    levels = [0.0, 0.5, 1.0]
    tables = {a: [[0.0, 1.0, 2.0]] * 10 for a in ATTRIBUTES[:2]}
    encoder = FashionConditionEncoder(11, 4 * TINY_UNET["block_out_channels"][0], list(ATTRIBUTES[:2]), 8, levels, tables)
    pipe = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, condition_encoder=encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main(argv=None):
    args = parse_args(argv)
    from pipeline.data import load_dataset
    from pipeline.models import load_pipeline
    from pipeline.sampling import generate
    from pipeline.settings import SamplingSettings
    from pipeline.style.attributes import measure

    machine = torch_machine(args.threads)
    per_class = 2 if args.smoke else args.num_per_class
    pipe = smoke_model() if args.smoke else load_pipeline(args.model or "pretrained/fashion-ddpm-style")
    attributes, encoder = pipe.style_attributes, pipe.condition_encoder
    if not attributes:
        raise SystemExit(f"error: {args.model} is a class-only model; style_control measures a style model")
    settings = SamplingSettings.resolve(pipe, **({"steps": 2} if args.smoke else {}))
    test = load_dataset(args.data_dir, split="test", data_flag="--data-dir DIR")
    real_labels = test.labels.numpy()
    real_measured = measure(test.images.numpy())
    real = {a: encoder.percentiles(a, real_labels, real_measured[a]) for a in attributes}
    names, num_classes = pipe.class_names, len(pipe.class_names)
    generated = {}  # (attribute, level) -> {b: percentiles of every image}, and the class ids
    for a in attributes:
        for level in args.levels:
            samples = generate(pipe, None, per_class, args.seed, settings=settings, style={a: level})
            measured = measure((samples.images[:, 0].numpy() * 255).round().astype(np.uint8))
            generated[a, level] = {b: encoder.percentiles(b, samples.class_ids, measured[b]) for b in attributes}
            labels = np.asarray(samples.class_ids)
            print(f"{a} {level:g}: median measured {np.nanmedian(generated[a, level][a]):.2f} "
                  f"({samples.seconds / len(samples):.3f} s / image)", flush=True)
    low, high = min(args.levels), max(args.levels)
    rows = []
    for a in attributes:
        per_class_rows = []
        for c in range(num_classes):
            pick = labels == c
            requested = np.concatenate([np.full(pick.sum(), level) for level in args.levels])
            measured = np.concatenate([generated[a, level][a][pick] for level in args.levels])
            leakage = {}
            for b in attributes:
                if b == a:
                    continue
                moved = np.nanmedian(generated[a, high][b][pick]) - np.nanmedian(generated[a, low][b][pick])
                near_high = (real_labels == c) & (np.abs(real[a] - high) <= WINDOW)
                near_low = (real_labels == c) & (np.abs(real[a] - low) <= WINDOW)
                real_moved = np.nanmedian(real[b][near_high]) - np.nanmedian(real[b][near_low])
                leakage[b] = float(moved - real_moved)
            per_class_rows.append({"class": names[c], "spearman": spearman(requested, measured),
                                   "mae": float(np.nanmean(np.abs(measured - requested))),
                                   "medians": {f"{level:g}": float(np.nanmedian(generated[a, level][a][pick]))
                                               for level in args.levels},
                                   "leakage": leakage})
        worst = {b: float(np.nanmean([abs(r["leakage"][b]) for r in per_class_rows])) for b in attributes if b != a}
        rows.append({"attribute": a, "spearman": float(np.nanmean([r["spearman"] for r in per_class_rows])),
                     "mae": float(np.nanmean([r["mae"] for r in per_class_rows])),
                     "leakage_mean_abs": worst, "max_leakage": max(worst.values()) if worst else 0.0,
                     "per_class": per_class_rows})
    model = "smoke (tiny random style model)" if args.smoke else repo_relative(args.model or "pretrained/fashion-ddpm-style")
    result = {"model": model, "num_per_class": per_class, "levels": args.levels, "seed": args.seed,
              "settings": settings.to_json(), "num_images": per_class * num_classes * len(args.levels) * len(attributes),
              "rows": rows, "smoke": args.smoke, "machine": machine}
    table = markdown_table(["attribute", "Spearman ρ (mean over classes)", "MAE (percentile)", "largest mean |leakage|"],
                           [[r["attribute"], f"{r['spearman']:.2f}", f"{r['mae']:.3f}",
                             f"{r['max_leakage']:.3f} ({max(r['leakage_mean_abs'], key=r['leakage_mean_abs'].get)})"
                             if r["leakage_mean_abs"] else "–"] for r in rows])
    markdown = "\n\n".join([f"# {args.name}{' (smoke run: not a measurement)' if args.smoke else ''}",
                            f"Model `{model}`, {settings.describe()}; {per_class} images per class and level "
                            f"{', '.join(f'{x:g}' for x in args.levels)}, seed {args.seed}.", table])
    emit(args.name, result, markdown, args)
    return result


if __name__ == "__main__":
    main()
