"""How well a style model does what a style request asks: requested vs measured percentile, per class and attribute.

For each attribute of the model and each level of --levels (default 0.1, 0.5, 0.9), --num-per-class images of every
class are generated with only that attribute requested (the others free), with the same seeds at every level (image j
of class c uses seed + 1,000,000·c + j, whatever the style), so the levels differ only by the request. Every image is
measured with `pipeline.style.attributes.measure` (the definition training used) and each measurement turned into
its percentile within its class with the model's own tables (the training set's). Reported per attribute (mean over
the classes, and per class):

  (a class is left out of an attribute's mean where the attribute barely varies in it: fewer than 3 distinct training
  values between its 10th and 90th percentile, e.g. the height of a Dress, which fills the frame top to bottom)

  spearman    Spearman ρ between requested and measured percentile of the requested attribute (pooled over levels)
  mae         mean |measured − requested| percentile
  leakage     for every other attribute b: how far its median percentile moves from the lowest to the highest level,
              minus how far it moves in real test images of the class whose requested attribute lies within ±0.1 of
              those levels (width and area move together in real clothes too; only movement beyond the real data's
              is leakage)

and, at each level of each attribute, pooled over the classes (per_class × classes images; the level's real images
are the images of each class whose percentile is nearest it: 100 per class of the test set for the reference, per_class
of the training set for the floor; the result records how far from the level the farthest of them lies):

  judge accuracy   the share of generated images the judge (pipeline/evaluation/judge.py) puts in their class
  judge-FID        judge-feature FID of the generated images vs the level's real test images, beside its floor: the
                   same number of real training images of that level (the same count per class) vs the same reference
  diversity        mean pairwise judge-feature distance within a class (mean over classes), generated vs the same
                   number of real training images of that level

  python -m benchmarks.style_control --model pretrained/fashion-ddpm-style --num-per-class 30 --threads 2
  python -m benchmarks.style_control --smoke
"""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.harness import RESULTS, benchmark_pipeline, emit, markdown_table, parser, torch_machine

NAME = "style_control"
WINDOW = 0.1  # real images whose attribute percentile lies within this of a level stand for that level (leakage)
MIN_DISTINCT = 3  # a class whose training values take fewer distinct values between its 10th and 90th percentile
# cannot be asked for a thin or a wide one: the attribute barely varies in it (items that fill the 28-pixel frame)
REFERENCE_PER_CLASS = 100  # real test images of each class nearest a level: the judge-FID reference of that level


def parse_args(argv=None):
    p = parser(NAME, __doc__, model=True, model_default="pretrained/fashion-ddpm-style", threads=True, seed=0,
               out=RESULTS, smoke="a tiny random style model, 2 images per class and level")
    p.add_argument("--num-per-class", type=int, default=30, help="images per class and level (default 30)")
    p.add_argument("--levels", default="0.1,0.5,0.9", help="requested percentiles (default 0.1,0.5,0.9)")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    p.add_argument("--name", default=NAME)
    p.add_argument("--style-guidance", type=float, default=None, metavar="W",
                   help="guide the style request by its own weight W (compositional guidance; default: the model's)")
    args = p.parse_args(argv)
    args.levels = [float(x) for x in args.levels.split(",")]
    if args.num_per_class < 2 or len(args.levels) < 2 or not all(0 <= x <= 1 for x in args.levels):
        raise SystemExit("error: --num-per-class must be >= 2 and --levels at least two percentiles in [0, 1]")
    return args


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = ~(np.isnan(x) | np.isnan(y))
    return float(spearmanr(x[ok], y[ok]).statistic) if ok.sum() > 2 and np.ptp(y[ok]) > 0 else float("nan")


def smoke_encoder(train):
    """A smoke run's condition encoder (`smoke_pipeline`'s condition_encoder): width and height, with the percentile
    tables of `train` (as training makes)."""

    def build(unet: dict):
        from pipeline.condition_encoder import FashionConditionEncoder, percentile_tables
        from pipeline.style.attributes import measure

        attributes, levels = ["width", "height"], [round(i / 20, 2) for i in range(21)]
        measured = {a: v for a, v in measure(train.images.numpy()).items() if a in attributes}
        tables = percentile_tables(measured, train.labels.numpy(), 10, levels)
        return FashionConditionEncoder(11, 4 * unet["block_out_channels"][0], attributes, 8, levels, tables)

    return build


def main(argv=None):
    args = parse_args(argv)
    from pipeline.data import load_dataset
    from pipeline.evaluation.judge import FashionJudge
    from pipeline.sampling import generate
    from pipeline.settings import SamplingSettings
    from pipeline.style.attributes import measure
    from pipeline.training.style import measured_attributes

    machine = torch_machine(args.threads)
    per_class = 2 if args.smoke else args.num_per_class
    test = load_dataset(args.data_dir, split="test", data_flag="--data-dir DIR")
    train = load_dataset(args.data_dir, split="train", data_flag="--data-dir DIR")
    if args.smoke:  # the floor's real images from 3,000 training images: seconds, not a minute of measuring
        train = dataclasses.replace(train, images=train.images[:3000], labels=train.labels[:3000])
    pipe, model = benchmark_pipeline(args.model, args.smoke, "pretrained/fashion-ddpm-style", condition_encoder=smoke_encoder(train))
    attributes, encoder = pipe.style_attributes, pipe.condition_encoder
    if not attributes:
        raise SystemExit(f"error: {args.model} is a class-only model; style_control measures a style model")
    settings = SamplingSettings.resolve(pipe, style_guidance=args.style_guidance,
                                        **({"steps": 2} if args.smoke else {})).check(pipe)
    judge = FashionJudge.load()
    real = {"test": RealImages(test, measure(test.images.numpy()), encoder, judge),
            "train": RealImages(train, measured_attributes(train.images, attributes), encoder, judge)}
    names, num_classes = pipe.class_names, len(pipe.class_names)
    generated = {}  # (attribute, level) -> Setting: every image's percentiles, class ids, judge predictions, features
    for a in attributes:
        for level in args.levels:
            samples = generate(pipe, None, per_class, args.seed, settings=settings, style={a: level})
            measured = measure((samples.images[:, 0].numpy() * 255).round().astype(np.uint8))
            preds, features = judge.predict(samples.images)
            labels = np.asarray(samples.class_ids)
            generated[a, level] = Setting({b: encoder.percentiles(b, labels, measured[b]) for b in attributes},
                                          labels, preds, features)
            print(f"{a} {level:g}: median measured {np.nanmedian(generated[a, level].percentiles[a]):.2f} "
                  f"({samples.seconds / len(samples):.3f} s / image)", flush=True)
    excluded = excluded_pairs(encoder, names)
    rows = [control_row(a, attributes, args.levels, generated, real["test"], names, excluded[a]) for a in attributes]
    quality = [quality_row(a, level, generated[a, level], real, per_class, args.seed, num_classes)
               for a in attributes for level in args.levels]
    result = {"model": model, "num_per_class": per_class, "levels": args.levels, "seed": args.seed,
              "settings": settings.to_json(), "num_images": per_class * num_classes * len(args.levels) * len(attributes),
              "window": WINDOW, "min_distinct": MIN_DISTINCT, "rows": rows, "quality": quality, "smoke": args.smoke, "machine": machine}
    emit(args.name, result, markdown(result, args.name, settings), args)
    return result


class Setting:
    """The generated images of one request, as measured: percentiles per attribute, class ids, judge output."""

    def __init__(self, percentiles: dict, labels: np.ndarray, preds: np.ndarray, features: np.ndarray):
        self.percentiles, self.labels, self.preds, self.features = percentiles, labels, preds, features


class RealImages(Setting):
    """A split's real images as the same measurements (judge predictions and features included)."""

    def __init__(self, data, measured: dict, encoder, judge):
        labels = data.labels.numpy()
        preds, features = judge.predict(data.images.float()[:, None] / 255)
        super().__init__({a: encoder.percentiles(a, labels, measured[a]) for a in encoder.style_attributes}, labels,
                         preds, features)

    def near(self, attribute: str, level: float, c: int | None = None) -> np.ndarray:
        """Indices of the images (of class c, else all) whose `attribute` percentile lies within WINDOW of level."""
        pick = np.abs(self.percentiles[attribute] - level) <= WINDOW
        return np.flatnonzero(pick if c is None else pick & (self.labels == c))

    def nearest(self, attribute: str, level: float, per_class: int, seed: int) -> np.ndarray:
        """Indices of the `per_class` images of each class whose `attribute` percentile is nearest `level` (ties in
        random order: integer measurements such as widths share one mid-rank percentile)."""
        rng = np.random.default_rng(seed)
        distance = np.abs(self.percentiles[attribute] - level)
        picked = []
        for c in np.unique(self.labels):
            members = np.flatnonzero((self.labels == c) & ~np.isnan(distance))
            members = members[rng.permutation(len(members))]
            picked.append(members[np.argsort(distance[members], kind="stable")[:per_class]])
        return np.concatenate(picked)


def excluded_pairs(encoder, names: list[str]) -> dict[str, list[str]]:
    """{attribute: the classes it does not apply to}: those where its training values take fewer than MIN_DISTINCT
    distinct values between the 10th and the 90th percentile (the model's own tables)."""
    levels = np.asarray(encoder.config.percentile_levels)
    inner = (levels >= 0.1 - 1e-9) & (levels <= 0.9 + 1e-9)
    return {a: [names[c] for c, row in enumerate(encoder.config.percentile_tables[a])
                if len(np.unique(np.asarray(row)[inner])) < MIN_DISTINCT] for a in encoder.style_attributes}


def control_row(a: str, attributes: list[str], levels: list[float], generated: dict, real: RealImages,
                names: list[str], excluded: list[str]) -> dict:
    """Spearman ρ, MAE and leakage of attribute `a`, per class, and their mean over the classes it applies to."""
    low, high = min(levels), max(levels)
    labels = generated[a, levels[0]].labels
    per_class_rows = []
    for c in range(len(names)):
        pick = labels == c
        requested = np.concatenate([np.full(pick.sum(), level) for level in levels])
        measured = np.concatenate([generated[a, level].percentiles[a][pick] for level in levels])
        leakage = {}
        for b in attributes:
            if b != a:
                moved = np.nanmedian(generated[a, high].percentiles[b][pick]) - np.nanmedian(generated[a, low].percentiles[b][pick])
                real_moved = (np.nanmedian(real.percentiles[b][real.near(a, high, c)])
                              - np.nanmedian(real.percentiles[b][real.near(a, low, c)]))
                leakage[b] = float(moved - real_moved)
        per_class_rows.append({"class": names[c], "excluded": names[c] in excluded,
                               "spearman": spearman(requested, measured),
                               "mae": float(np.nanmean(np.abs(measured - requested))),
                               "medians": {f"{level:g}": float(np.nanmedian(generated[a, level].percentiles[a][pick]))
                                           for level in levels},
                               "leakage": leakage})
    applies = [r for r in per_class_rows if not r["excluded"]]
    mean_abs = {b: float(np.nanmean([abs(r["leakage"][b]) for r in applies])) for b in attributes if b != a}
    return {"attribute": a, "classes": [r["class"] for r in applies], "excluded_classes": excluded,
            "spearman": float(np.nanmean([r["spearman"] for r in applies])),
            "mae": float(np.nanmean([r["mae"] for r in applies])),
            "leakage_mean_abs": mean_abs, "max_leakage": max(mean_abs.values()) if mean_abs else 0.0,
            "per_class": per_class_rows}


def diversity(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise judge-feature distance within a class, averaged over the classes."""
    from scipy.spatial.distance import pdist

    return float(np.mean([pdist(features[labels == c]).mean() for c in np.unique(labels) if (labels == c).sum() > 1]))


def quality_row(a: str, level: float, images: Setting, real: dict, per_class: int, seed: int, num_classes: int) -> dict:
    """Judge accuracy, judge-FID (vs the level's real test images) and diversity of one setting, each beside the same
    number for as many real training images of that level (per_class of each class)."""
    from pipeline.evaluation.inception import fid_from_features

    test, train = real["test"], real["train"]
    reference = test.nearest(a, level, REFERENCE_PER_CLASS, seed)
    floor = train.nearest(a, level, per_class, seed)
    return {"attribute": a, "level": level, "num_images": len(images.labels), "reference_images": len(reference),
            "reference_max_distance": float(np.abs(test.percentiles[a][reference] - level).max()),
            "floor_max_distance": float(np.abs(train.percentiles[a][floor] - level).max()),
            "judge_accuracy": float((images.preds == images.labels).mean()),
            "judge_accuracy_floor": float((train.preds[floor] == train.labels[floor]).mean()),
            "judge_fid": fid_from_features(images.features, real["test"].features[reference]),
            "judge_fid_floor": fid_from_features(train.features[floor], real["test"].features[reference]),
            "diversity": diversity(images.features, images.labels),
            "diversity_real": diversity(train.features[floor], train.labels[floor])}


def markdown(result: dict, name: str, settings) -> str:
    rows = result["rows"]
    control = markdown_table(["attribute", "Spearman ρ (mean over classes)", "MAE (percentile)", "largest mean |leakage|",
                              "classes left out"],
                             [[r["attribute"], f"{r['spearman']:.2f}", f"{r['mae']:.3f}",
                               f"{r['max_leakage']:.3f} ({max(r['leakage_mean_abs'], key=r['leakage_mean_abs'].get)})"
                               if r["leakage_mean_abs"] else "–", ", ".join(r["excluded_classes"]) or "none"] for r in rows])
    quality = markdown_table(["attribute", "level", "judge acc. (real)", "judge-FID (real floor)", "diversity (real)"],
                             [[q["attribute"], f"{q['level']:g}", f"{q['judge_accuracy']:.3f} ({q['judge_accuracy_floor']:.3f})",
                               f"{q['judge_fid']:.2f} ({q['judge_fid_floor']:.2f})",
                               f"{q['diversity']:.2f} ({q['diversity_real']:.2f})"] for q in result["quality"]])
    levels = ", ".join(f"{x:g}" for x in result["levels"])
    return "\n\n".join([f"# {name}{' (smoke run: not a measurement)' if result['smoke'] else ''}",
                         f"Model `{result['model']}`, {settings.describe()}; {result['num_per_class']} images per class "
                         f"and level {levels}, seed {result['seed']}.", control, quality])


if __name__ == "__main__":
    main()
