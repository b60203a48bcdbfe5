"""The CLIP-guided training loss measured: configs/clip_finetune.yaml (a fine-tune of pretrained/fashion-ddpm-cpu with
the CLIP term) beside the same fine-tune without it, at an equal budget (same updates, data order, noise and seed),
and the base model untouched, each judged with metrics the critic never saw, beside their floors:

  Inception FID, judge accuracy and judge-FID   N = --num-per-class x 10 (`pipeline.evaluation.fidelity.evaluate`)
  CAS                                            pipeline/evaluation/cas.py's fixed CNN and recipe (--cas-updates
                                                 updates of 128) trained on --cas-per-class generated images per class,
                                                 tested on the 10,000 test images; floor: as many real training images
  CLIP quality and agreement                     the critic's own score (p_good + p_clear - p_blurry) on the same images:
                                                 what the loss optimises, reported to show whether it was gamed

Every arm is trained and judged once per --seeds entry (the seed of its data order and noise, and of its images);
a CLIP arm counts as better on a metric only if it beats the plain fine-tune on every seed. The images of an arm and
seed are made once (the model's default sampling): the first --num-per-class of each class are the evaluation's, all
--cas-per-class the CAS training set. Runs train into --work-dir/seed<S>/<arm> and resume after a kill; each
measurement is kept beside the runs.

  python -m benchmarks.clip_loss --threads 2 --out benchmarks/results     # ~1 h 40 min on 2 CPU threads
  python -m benchmarks.clip_loss --smoke
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, SMOKE_CONFIG, emit, markdown_table, parser, repo_relative, torch_machine, train_run

NAME = "clip_loss"
CONFIG = REPO / "configs" / "clip_finetune.yaml"
ARMS = {  # arm -> overrides of configs/clip_finetune.yaml (None: the base model, not trained)
    "base": None,
    "plain fine-tune": ["clip_loss_weight=0"],
    "CLIP fine-tune": [],
    "CLIP fine-tune λ 0.1": ["clip_loss_weight=0.1"],  # 10× the config's: what a strong term does
}


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, out=RESULTS,
               smoke="configs/tiny.yaml's U-Net as the base (8 updates), 4-update fine-tunes, 2 images per class, "
                     "CAS on 4 per class for 5 updates, no Inception")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms (default: all of {list(ARMS)})")
    p.add_argument("--updates", type=int, default=None, help="fine-tune updates (default: the config's max_train_steps)")
    p.add_argument("--num-per-class", type=int, default=100, help="images per class judged (default 100: N = 1000)")
    p.add_argument("--cas-per-class", type=int, default=300, help="generated images per class the CAS CNN trains on (default 300)")
    p.add_argument("--cas-updates", type=int, default=500, help="CAS classifier updates (default 500, synthetic_data's CPU size)")
    p.add_argument("--cas-seeds", default="0,1,2", help="CAS classifier seeds (default 0,1,2)")
    p.add_argument("--seeds", default="0,1", help="fine-tune seeds, each also the seed of its images (default 0,1)")
    p.add_argument("--work-dir", default="runs/clip_loss", help="where the fine-tunes are trained (default %(default)s)")
    args = p.parse_args(argv)
    args.arms = args.arms.split(",")
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"error: --arms {unknown} not among {list(ARMS)}")
    try:
        args.cas_seeds, args.seeds = ([int(s) for s in text.split(",")] for text in (args.cas_seeds, args.seeds))
    except ValueError:
        raise SystemExit(f"error: --seeds and --cas-seeds take comma-separated ints, got {args.seeds!r}, "
                         f"{args.cas_seeds!r}") from None
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"error: --seeds {args.seeds} names a seed twice")
    if args.smoke:
        args.updates, args.num_per_class, args.cas_per_class, args.cas_updates, args.cas_seeds = 4, 2, 4, 5, [0]
        args.seeds = [0, 1]
        args.work_dir = str(Path(args.work_dir) / "smoke")
    if not 1 <= args.num_per_class <= args.cas_per_class:
        raise SystemExit(f"error: need 1 <= --num-per-class <= --cas-per-class, got {args.num_per_class}, {args.cas_per_class}")
    return args


def smoke_base(args) -> Path:
    """A class-only tiny model to fine-tune in a smoke run (`SMOKE_CONFIG`, 8 updates)."""
    from pipeline.training.config import load_config

    return train_run(load_config(str(REPO / SMOKE_CONFIG),
                                 ["max_train_steps=8", f"output_dir={Path(args.work_dir) / 'base'}"]))


def folder_name(arm: str) -> str:
    """'CLIP fine-tune λ 0.1' -> 'CLIP-fine-tune-0.1': the arm's run folder."""
    import re

    return re.sub(r"[^A-Za-z0-9.]+", "-", arm).strip("-")


def seed_dir(args, seed: int) -> Path:
    return Path(args.work_dir) / f"seed{seed}"


def arm_config(args, arm: str, base: str, seed: int):
    from pipeline.training.config import load_config

    overrides = [*ARMS[arm], f"init_from={base}", f"seed={seed}", f"output_dir={seed_dir(args, seed) / folder_name(arm)}"]
    if args.updates:
        overrides += [f"max_train_steps={args.updates}", f"checkpointing_steps={max(1, args.updates // 3)}"]
    if args.smoke:
        overrides += ["max_train_images=256", "train_batch_size=16", "lr_warmup_steps=1", "sample_steps=4"]
    return load_config(str(CONFIG), overrides)


def cas(images, labels, args, test) -> dict:
    """CAS (`pipeline.evaluation.cas`) of uint8 `images` with each CAS seed, tested on the test set."""
    from pipeline.evaluation.cas import score

    return score(images, labels, test.images, test.labels, args.cas_seeds, args.cas_updates)


def measure(args, folder: Path, name: str, scorer, test, seed: int) -> dict:
    """An arm's evaluation, CLIP scores and CAS on one set of images made with `seed` (kept in
    --work-dir/seed<S>/<arm>-eval/)."""
    import numpy as np

    from pipeline.evaluation.fidelity import evaluate
    from pipeline.models import load_pipeline
    from pipeline.sampling import generate

    kept = seed_dir(args, seed) / f"{Path(name).name}-eval" / f"n{args.num_per_class}-cas{args.cas_per_class}x{args.cas_updates}-seed{seed}.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    pipe = load_pipeline(str(folder))
    samples = generate(pipe, None, args.cas_per_class, seed)
    metrics = evaluate(pipe, args.num_per_class, seed=seed, inception=not args.smoke, samples=samples,
                       model_name=name, verbose=False)
    labels = np.asarray(samples.class_ids)
    first = np.concatenate([np.flatnonzero(labels == c)[:args.num_per_class] for c in range(len(pipe.class_names))])
    clip = scorer.score(samples.images[first], labels[first], pipe.class_names)
    pixels = (samples.images[:, 0] * 255).round().clamp(0, 255).byte()
    result = {**{k: metrics[k] for k in ("judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor",
                                         "inception_fid", "inception_fid_floor", "judge_accuracy_per_class",
                                         "time_per_image_s", "sampler", "steps", "guidance_scale", "guidance_interval")},
              "clip_quality": float(clip.quality.mean()), "clip_agreement": float(clip.zero_shot_correct.mean()),
              "cas": cas(pixels, labels, args, test)}
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(result, indent=2) + "\n")
    return result


def floors(args, scorer, test) -> dict:
    """The real-data values of the metrics that evaluate() does not floor: CAS and CLIP on real training images."""
    import torch

    from pipeline.data import load_dataset
    from pipeline.evaluation.cas import per_class_subset

    path = Path(args.work_dir) / f"floors-cas{args.cas_per_class}x{args.cas_updates}-n{args.num_per_class}.json"
    if path.is_file():
        return json.loads(path.read_text())
    train = load_dataset(None, None, "train")
    index = per_class_subset(train.labels, args.cas_per_class, 0)
    images, labels = train.images[index], train.labels[index]
    first = torch.cat([torch.nonzero(labels == c).flatten()[:args.num_per_class] for c in range(len(train.class_names))])
    clip = scorer.score(images[first].float()[:, None] / 255, labels[first].numpy(), train.class_names)
    result = {"cas": cas(images, labels, args, test), "clip_quality": float(clip.quality.mean()),
              "clip_agreement": float(clip.zero_shot_correct.mean())}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


MEANS = ("judge_accuracy", "judge_fid", "inception_fid", "clip_quality", "clip_agreement")  # averaged over the seeds


def one_run(args, arm: str, base: str, seed: int, scorer, test) -> dict:
    """One arm at one seed: trained (or found trained), then measured."""
    if ARMS[arm] is None:
        folder, config = Path(base), None
    else:
        config = arm_config(args, arm, base, seed)
        folder = train_run(config)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"seed": seed, "model": repo_relative(str(folder)),
            "updates": None if config is None else rows[-1]["step"],
            "train_minutes": None if config is None else rows[-1]["wall_time_s"] / 60,
            "final_clip_term": None if config is None else rows[-1].get("clip_term"),
            **measure(args, folder, repo_relative(str(folder)), scorer, test, seed)}


def combined(arm: str, runs: list[dict]) -> dict:
    """An arm over its seeds: the mean of each metric (CAS: of the per-seed means), each seed kept."""
    import statistics

    first = runs[0]
    out = {"arm": arm, "overrides": ARMS[arm], "clip_loss_weight": None, "updates": first["updates"],
           "train_minutes": first["train_minutes"], "per_seed": runs,
           **{k: first[k] for k in ("judge_accuracy_floor", "judge_fid_floor", "inception_fid_floor")}}
    for key in MEANS:
        values = [r[key] for r in runs]
        out[key] = None if None in values else statistics.fmean(values)
    out["cas"] = {"mean": statistics.fmean(r["cas"]["mean"] for r in runs),
                  "std": statistics.fmean(r["cas"]["std"] for r in runs)}
    return out


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    from pipeline.data import load_dataset
    from pipeline.evaluation.clip import load_clip
    from pipeline.training.config import load_config

    scorer = load_clip()
    test = load_dataset(None, None, "test")
    base = str(smoke_base(args)) if args.smoke else load_config(str(CONFIG)).init_from
    arms = []
    for arm in args.arms:
        entry = combined(arm, [one_run(args, arm, base, seed, scorer, test) for seed in args.seeds])
        if ARMS[arm] is not None:
            entry["clip_loss_weight"] = arm_config(args, arm, base, args.seeds[0]).clip_loss_weight
        arms.append(entry)
    result = {"config": repo_relative(str(CONFIG)), "base": repo_relative(base), "smoke": args.smoke, "machine": machine,
              "seeds": args.seeds, "num_per_class": args.num_per_class, "cas_per_class": args.cas_per_class,
              "cas_updates": args.cas_updates, "cas_seeds": args.cas_seeds, "clip_model": repo_relative(scorer.name),
              "floors": floors(args, scorer, test), "arms": arms}
    emit(NAME, result, to_markdown(result), args)
    return result


METRICS = {"judge-FID": ("judge_fid", -1), "Inception FID": ("inception_fid", -1), "CAS": ("cas", 1)}  # sign: better


def _value(run: dict, key: str):
    return run["cas"]["mean"] if key == "cas" else run[key]


def wins(clip: dict, plain: dict) -> dict:
    """Per critic-free metric, on how many seeds the CLIP arm beat the plain one (paired: same seed, same data order,
    noise and images' seeds)."""
    out = {}
    for name, (key, sign) in METRICS.items():
        pairs = [(_value(c, key), _value(p, key)) for c, p in zip(clip["per_seed"], plain["per_seed"])]
        out[name] = sum(1 for c, p in pairs if c is not None and p is not None and sign * (c - p) > 0)
    return out


def verdict(result: dict) -> str:
    """Whether a CLIP fine-tune beat the plain fine-tune on every critic-free metric (judge-FID, Inception FID, CAS) on
    every seed: the rule for making the term a default. The base-to-plain change is set beside it for scale."""
    arms = {a["arm"]: a for a in result["arms"]}
    clip_arms = [a for a in result["arms"] if a["clip_loss_weight"]]
    if "plain fine-tune" not in arms or not clip_arms:
        return "Not decided: the plain fine-tune and a CLIP fine-tune were not both measured."
    plain, seeds = arms["plain fine-tune"], len(result["seeds"])
    parts, any_default = [], False
    for clip in clip_arms:
        counts = wins(clip, plain)
        every = [k for k, n in counts.items() if n == seeds]
        any_default |= len(every) == len(METRICS)
        tally = ", ".join(f"{k} on {n} of {seeds}" for k, n in counts.items())
        outcome = ("wins: it is better on every critic-free metric on every seed" if len(every) == len(METRICS)
                   else "does not win")
        gamed = "rises" if clip["clip_quality"] > plain["clip_quality"] else "does not rise"
        parts.append(f"At λ = {clip['clip_loss_weight']:g} the CLIP term {outcome} (better than the plain fine-tune "
                     f"on {tally} seeds), while the critic's own quality score {gamed} "
                     f"({plain['clip_quality']:.3f} -> {clip['clip_quality']:.3f}, mean over seeds).")
    if "base" in arms:
        base = arms["base"]
        moved = [f"judge-FID {base['judge_fid']:.3f} -> {plain['judge_fid']:.3f}"]
        if base["inception_fid"] is not None:
            moved.append(f"Inception FID {base['inception_fid']:.2f} -> {plain['inception_fid']:.2f}")
        moved.append(f"CAS {100 * base['cas']['mean']:.2f} -> {100 * plain['cas']['mean']:.2f} %")
        parts.append(f"For scale, the same updates without the term moved the base by {', '.join(moved)} (means).")
    parts.append("The term could become a default." if any_default else
                 "It stays off by default (clip_loss_weight: 0).")
    return " ".join(parts)


def to_markdown(r: dict) -> str:
    floor = r["floors"]

    def beside(value, floor_value, digits):
        return "–" if value is None else f"{value:.{digits}f} (floor {floor_value:.{digits}f})"

    rows = [[a["arm"], "–" if a["updates"] is None else f"{a['updates']} ({a['train_minutes']:.0f} min)",
             beside(a["judge_accuracy"], a["judge_accuracy_floor"], 3), beside(a["judge_fid"], a["judge_fid_floor"], 3),
             beside(a["inception_fid"], a["inception_fid_floor"], 2),
             f"{100 * a['cas']['mean']:.2f} ± {100 * a['cas']['std']:.2f}", f"{a['clip_quality']:.3f}",
             f"{a['clip_agreement']:.3f}"] for a in r["arms"]]
    rows.append(["real training images (floor)", "–", "–", "–", "–",
                 f"{100 * floor['cas']['mean']:.2f} ± {100 * floor['cas']['std']:.2f}", f"{floor['clip_quality']:.3f}",
                 f"{floor['clip_agreement']:.3f}"])
    per_seed = [[a["arm"], run["seed"], f"{run['judge_fid']:.3f}", "–" if run["inception_fid"] is None else
                 f"{run['inception_fid']:.2f}", f"{100 * run['cas']['mean']:.2f}", f"{run['clip_quality']:.3f}"]
                for a in r["arms"] for run in a["per_seed"]]
    n = r["num_per_class"] * 10
    seeds = ", ".join(map(str, r["seeds"]))
    return "\n\n".join([
        f"# {NAME}: the CLIP-guided loss vs a plain fine-tune{' (smoke run: not a measurement)' if r['smoke'] else ''}",
        f"Fine-tunes of `{r['base']}` by `{r['config']}`, seeds {seeds} (a seed sets the fine-tune's data order and "
        f"noise and its images' seeds); the critic is `{r['clip_model']}`. Judge accuracy, judge-FID and Inception FID "
        f"at N = {n:,} against the test set (floors: {n:,} real training images); CAS: synthetic_data's CNN, "
        f"{r['cas_updates']} updates of 128 on {r['cas_per_class']} generated images per class, tested on the 10,000 "
        f"test images, classifier seeds {', '.join(map(str, r['cas_seeds']))} (± their std; floor: as many real "
        "training images); CLIP quality and agreement are the critic's own scores on the judged images. Means over "
        "the seeds:",
        markdown_table(["arm", "updates", "judge accuracy", "judge-FID", "Inception FID", "CAS %", "CLIP quality",
                        "CLIP agreement"], rows),
        "Each seed:",
        markdown_table(["arm", "seed", "judge-FID", "Inception FID", "CAS %", "CLIP quality"], per_seed),
        verdict(r),
    ])

if __name__ == "__main__":
    main()
