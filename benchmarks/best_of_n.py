"""Best-of-N measured: the report's "generate 15 per class, keep CLIP's best 3", repeated over many seed groups, judged
by metrics the selection never saw, beside random picks from the same pools and beside selection by the judge.

Pools follow the project's seed rule: image j of class c is drawn from seed + 1e6·c + j, and group g holds the images
j in [g·pool, (g+1)·pool) of every class. From each group's pool of each class three selections keep --keep images:

  clip     the highest CLIP quality (p_good + p_clear - p_blurry, `pipeline.evaluation.clip`; the shipped
           pretrained/fashion-clip unless --clip-model), what `fashion-ddpm best-of-n` does
  judge    the highest judge probability of the intended class (its judge metrics are circular: marked)
  random   --keep at random, repeated --random-draws times (mean ± std over the draws): the baseline

Each kept set (groups × keep images per class) is scored with judge accuracy, judge-FID against the 10,000 test images
(floor: as many real training images), CLIP quality and agreement (circular for `clip`), and diversity: the mean
distance between two images of one class in the judge's feature space (real training images: the floor), which a
selection that keeps only the most typical images lowers.

The pools are generated once into --work-dir in chunks (a rerun or a run after a kill reuses the finished chunks):

  python -m benchmarks.best_of_n --groups 100 --threads 2 --out benchmarks/results   # 15,000 images, ~80 min on 2 threads
  python -m benchmarks.best_of_n --smoke
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, emit, markdown_table, parser, repo_relative, torch_machine
from pipeline.io import atomic_path, atomic_write_text

NAME = "best_of_n"
CHUNK_GROUPS = 10  # groups generated per cached chunk (~7 min of the default model on 2 threads)
SELECTIONS = ("random", "clip", "judge")


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model=True, clip_model=True, threads=True, seed=0, out=RESULTS,
               smoke="2 groups, pool 3, keep 1, 2 random draws, into --work-dir/smoke")
    p.add_argument("--groups", type=int, default=100, help="seed groups (default 100)")
    p.add_argument("--pool", type=int, default=15, help="images per class in a group's pool (default 15)")
    p.add_argument("--keep", type=int, default=3, help="images kept per class and group (default 3)")
    p.add_argument("--random-draws", type=int, default=20, help="random selections averaged (default 20)")
    p.add_argument("--work-dir", default=str(REPO / "runs" / NAME), help="where the pools are cached (default runs/best_of_n)")
    args = p.parse_args(argv)
    if args.smoke:
        args.groups, args.pool, args.keep, args.random_draws = 2, 3, 1, 2
        args.work_dir = str(Path(args.work_dir) / "smoke")
    for flag, value, low in (("--groups", args.groups, 1), ("--pool", args.pool, 2), ("--random-draws", args.random_draws, 1)):
        if value < low:
            raise SystemExit(f"error: {flag} must be >= {low}, got {value}")
    if not 1 <= args.keep < args.pool:
        raise SystemExit(f"error: --keep must be in 1..{args.pool - 1} (below --pool), got {args.keep}")
    return args


# ---------------------------------------------------------------------------------------------------- pools
def generate_pools(pipe, args, settings) -> tuple:
    """All pools as (images uint8 C×(groups·pool)×28×28, seeds C×(groups·pool)), generated chunk by chunk into
    --work-dir (each chunk written atomically, so a kill loses at most the chunk in progress)."""
    import numpy as np

    from pipeline.sampling import generate

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    identity = {"model": repo_relative(str(args.model or "pretrained/fashion-ddpm-gpu")), "settings": settings.to_json(),
                "seed": args.seed, "pool": args.pool}
    meta = work / "pools.json"
    if meta.is_file() and json.loads(meta.read_text()) != identity:
        raise SystemExit(f"error: {work} holds pools of another model, sampling, seed or pool size "
                         f"({meta.read_text().strip()}); give another --work-dir")
    atomic_write_text(meta, json.dumps(identity))
    images, seeds = [], []
    for g0 in range(0, args.groups, CHUNK_GROUPS):
        g1 = min(g0 + CHUNK_GROUPS, args.groups)
        path = work / f"groups_{g0:04d}_{g1:04d}.npz"
        if not path.is_file():
            samples = generate(pipe, None, (g1 - g0) * args.pool, args.seed, settings=settings, start_index=g0 * args.pool)
            print(f"groups {g0}..{g1 - 1}: {len(samples)} images in {samples.seconds:.0f} s", flush=True)
            pixels = (samples.images[:, 0] * 255).round().clamp(0, 255).byte().numpy()
            with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz"
                np.savez(f, images=pixels, seeds=np.asarray(samples.seeds), seconds=samples.seconds)
        with np.load(path) as chunk:
            classes = len(pipe.class_names)
            images.append(chunk["images"].reshape(classes, -1, 28, 28))
            seeds.append(chunk["seeds"].reshape(classes, -1))
    return np.concatenate(images, axis=1), np.concatenate(seeds, axis=1)


# ---------------------------------------------------------------------------------------------------- selections
def select(scores, groups: int, pool: int, keep: int):
    """Per class and group, the `keep` pool images with the highest `scores` (C×(groups·pool)): flat indices."""
    import numpy as np

    classes = scores.shape[0]
    grouped = scores.reshape(classes, groups, pool)
    top = np.argsort(-grouped, axis=2, kind="stable")[:, :, :keep]  # ties keep generation order
    return _flat_index(top, groups, pool)


def random_select(rng, classes: int, groups: int, pool: int, keep: int):
    import numpy as np

    top = np.argsort(rng.random((classes, groups, pool)), axis=2)[:, :, :keep]
    return _flat_index(top, groups, pool)


def _flat_index(top, groups: int, pool: int):
    import numpy as np

    classes = top.shape[0]
    offset = (np.arange(classes)[:, None, None] * groups * pool) + (np.arange(groups)[None, :, None] * pool)
    return np.sort((offset + top).reshape(-1))


def diversity(features, labels) -> float:
    """Mean Euclidean distance between two different images of the same class, averaged over the classes."""
    import numpy as np
    from scipy.spatial.distance import pdist

    return float(np.mean([pdist(features[labels == c]).mean() for c in np.unique(labels)]))


def score_set(index, data: dict, test_features) -> dict:
    import numpy as np

    from pipeline.evaluation.inception import fid_from_features

    labels = data["labels"][index]
    correct = data["judge_pred"][index] == labels
    return {"judge_accuracy": float(correct.mean()),
            "judge_accuracy_per_class": [float(correct[labels == c].mean()) for c in range(data["classes"])],
            "judge_fid": fid_from_features(data["judge_features"][index], test_features),
            "diversity": diversity(data["judge_features"][index], labels),
            "clip_quality": float(data["clip_quality"][index].mean()),
            "clip_agreement": float(np.mean(data["clip_correct"][index]))}


def mean_std(runs: list[dict]) -> dict:
    """The random draws' metrics: mean and std (ddof 1) of every number, per-class lists element-wise."""
    import numpy as np

    out = {}
    for key in runs[0]:
        values = np.asarray([r[key] for r in runs], dtype=np.float64)
        std = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros_like(values[0])
        out[key] = values.mean(axis=0).tolist()
        out[key + "_std"] = std.tolist()
    return out


# ---------------------------------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    import numpy as np
    import torch

    from pipeline.evaluation.clip import load_clip
    from pipeline.evaluation.inception import fid_from_features, real_features, reference_available
    from pipeline.evaluation.judge import FashionJudge, judge_fingerprint
    from pipeline.models import load_pipeline
    from pipeline.settings import SamplingSettings

    scorer = load_clip(args.clip_model)  # a bad CLIP folder or missing data stops before minutes of sampling
    pipe = load_pipeline(args.model)
    classes = len(pipe.class_names)
    kept_n = args.groups * args.keep * classes
    judge_name = f"judge-{judge_fingerprint()}"
    reference_available([("test", 10000, judge_name), ("train", kept_n, judge_name)])
    settings = SamplingSettings.resolve(pipe)

    pixels, seeds = generate_pools(pipe, args, settings)
    per_class = pixels.shape[1]
    images = torch.from_numpy(pixels.reshape(-1, 28, 28)).float().div(255)[:, None]
    labels = np.repeat(np.arange(classes), per_class)
    judge = FashionJudge.load()
    judge_pred, judge_features = judge.predict(images)
    with torch.no_grad():
        judge_probs = judge.head.eval()(torch.from_numpy(judge_features).float()).softmax(1).numpy()
    clip = scorer.score(images, labels, pipe.class_names)
    data = {"labels": labels, "classes": classes, "judge_pred": judge_pred, "judge_features": judge_features,
            "clip_quality": clip.quality, "clip_correct": clip.zero_shot_correct}

    def judge_extract(x):
        return judge.predict(x)[1]

    test = real_features("test", 10000, judge_name, judge_extract)["features"]
    floor = real_features("train", kept_n, judge_name, judge_extract)
    confidence = judge_probs[np.arange(len(labels)), labels]
    grouped = (args.groups, args.pool, args.keep)
    rng = np.random.default_rng(args.seed)
    random_runs = [score_set(random_select(rng, classes, *grouped), data, test) for _ in range(args.random_draws)]
    selections = {
        "random": mean_std(random_runs),
        "clip": score_set(select(clip.quality.reshape(classes, -1), *grouped), data, test),
        "judge": score_set(select(confidence.reshape(classes, -1), *grouped), data, test),
    }
    clip_kept = select(clip.quality.reshape(classes, -1), *grouped)
    judge_kept = select(confidence.reshape(classes, -1), *grouped)
    overlap = len(np.intersect1d(clip_kept, judge_kept)) / len(clip_kept)
    floor_correct = judge.head.eval()(torch.from_numpy(floor["features"]).float()).argmax(1).numpy() == floor["labels"]
    result = {
        "model": repo_relative(str(args.model or "pretrained/fashion-ddpm-gpu")), "settings": settings.label(),
        "clip_model": repo_relative(scorer.name), "smoke": args.smoke, "machine": machine, "seed": args.seed,
        "groups": args.groups, "pool": args.pool, "keep": args.keep, "random_draws": args.random_draws,
        "pool_images": int(len(labels)), "kept_images": kept_n, "class_names": list(pipe.class_names),
        "first_seed_per_class": seeds[:, 0].tolist(),
        "pool_scores": {"judge_accuracy": float((judge_pred == labels).mean()),
                        "clip_quality": float(clip.quality.mean()),
                        "spearman_clip_quality_vs_judge_confidence": _spearman(clip.quality, confidence)},
        "floor": {"judge_accuracy": float(floor_correct.mean()),
                  "judge_fid": fid_from_features(floor["features"], test),
                  "diversity": diversity(floor["features"], floor["labels"]), "images": kept_n},
        "selections": selections,
        "clip_judge_overlap": overlap,
    }
    emit(NAME, result, to_markdown(result), args)
    return result


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def to_markdown(r: dict) -> str:
    sel, floor = r["selections"], r["floor"]
    rnd = sel["random"]

    def cell(name, key, digits):
        s = sel[name]
        value = f"{s[key]:.{digits}f}"
        return f"{value} ± {s[key + '_std']:.{digits}f}" if name == "random" else value

    labels = {"random": f"random {r['keep']} of {r['pool']} (mean ± std of {r['random_draws']} draws)",
              "clip": f"CLIP quality, best {r['keep']} of {r['pool']}",
              "judge": f"judge confidence, best {r['keep']} of {r['pool']} (judge metrics circular)"}
    rows = [[labels[name], cell(name, "judge_accuracy", 3), cell(name, "judge_fid", 3), cell(name, "diversity", 2),
             cell(name, "clip_quality", 3), cell(name, "clip_agreement", 3)] for name in SELECTIONS]
    rows.append(["floor: as many real training images", f"{floor['judge_accuracy']:.3f}", f"{floor['judge_fid']:.3f}",
                 f"{floor['diversity']:.2f}", "–", "–"])
    per_class = [[name, f"{rnd['judge_accuracy_per_class'][c]:.3f}", f"{sel['clip']['judge_accuracy_per_class'][c]:.3f}",
                  f"{sel['judge']['judge_accuracy_per_class'][c]:.3f}"] for c, name in enumerate(r["class_names"])]
    pool = r["pool_scores"]
    return "\n\n".join([
        f"# {NAME}: `{r['model']}` ({r['settings']}){' (smoke run: not a measurement)' if r['smoke'] else ''}",
        f"{r['groups']} seed groups × {r['pool']} images per class = {r['pool_images']:,} generated; each selection keeps "
        f"{r['keep']} per class and group, {r['kept_images']:,} images. CLIP: `{r['clip_model']}`. Judge-FID is against "
        "the 10,000 test images; diversity is the mean judge-feature distance between two images of one class.",
        markdown_table(["selection", "judge accuracy", "judge-FID", "diversity", "CLIP quality", "CLIP agreement"], rows),
        f"Whole pools: judge accuracy {pool['judge_accuracy']:.3f}, CLIP quality {pool['clip_quality']:.3f}; Spearman ρ "
        f"of CLIP quality with the judge's probability of the intended class {pool['spearman_clip_quality_vs_judge_confidence']:.3f}. "
        f"The CLIP and judge selections share {100 * r['clip_judge_overlap']:.0f} % of their images "
        f"(two random selections: {100 * r['keep'] / r['pool']:.0f} % expected).",
        verdict(r),
        "Judge accuracy per class:",
        markdown_table(["class", "random", "CLIP best", "judge best (circular)"], per_class),
    ])


def verdict(r: dict) -> str:
    """What CLIP selection did against random picks from the same pools, in words drawn from the numbers: a
    difference counts only beyond two standard deviations of the random draws."""
    rnd, clip = r["selections"]["random"], r["selections"]["clip"]

    def compared(key, better_when_higher, digits):
        diff, spread = clip[key] - rnd[key], 2 * rnd[key + "_std"]
        if abs(diff) <= spread:
            word = "no different from"
        else:
            word = "higher than" if diff > 0 else "lower than"
            if better_when_higher is not None:
                word = word.replace(" than", " (better) than" if (diff > 0) == better_when_higher else " (worse) than")
        return f"{word} random picks' ({clip[key]:.{digits}f} vs {rnd[key]:.{digits}f} ± {rnd[key + '_std']:.{digits}f})"

    return (f"Keeping CLIP's best {r['keep']} of {r['pool']}: judge accuracy {compared('judge_accuracy', True, 3)}, "
            f"judge-FID {compared('judge_fid', False, 3)}, diversity {compared('diversity', None, 2)}; CLIP's own "
            f"quality score {compared('clip_quality', True, 3)}.")


if __name__ == "__main__":
    main()
