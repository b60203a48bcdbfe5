"""The CLIP-guided training loss measured: configs/clip_finetune.yaml (a fine-tune of pretrained/fashion-ddpm-cpu with
the CLIP term) beside the same fine-tune without it, at an equal budget (same updates, data order, noise and seed),
and the base model untouched, each judged with metrics the critic never saw, beside their floors:

  Inception FID, judge accuracy and judge-FID   N = --num-per-class x 10 (`pipeline.evaluation.fidelity.evaluate`)
  CAS                                            benchmarks/synthetic_data.py's fixed CNN and recipe (--cas-updates
                                                 updates of 128) trained on --cas-per-class generated images per class,
                                                 tested on the 10,000 test images; floor: as many real training images
  CLIP quality and agreement                     the critic's own score (p_good + p_clear - p_blurry) on the same images:
                                                 what the loss optimises, reported to show whether it was gamed

The images of an arm are made once (the model's default sampling, seed 0): the first --num-per-class of each class are
the evaluation's, all --cas-per-class the CAS training set. Runs train into --work-dir/<arm> and resume after a kill;
each arm's measurements are kept beside its weights.

  python -m benchmarks.clip_loss --threads 2 --out benchmarks/results     # ~1 h on 2 CPU threads
  python -m benchmarks.clip_loss --smoke
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, emit, markdown_table, parser, repo_relative, torch_machine, train_run

NAME = "clip_loss"
CONFIG = REPO / "configs" / "clip_finetune.yaml"
ARMS = {  # arm -> overrides of configs/clip_finetune.yaml (None: the base model, not trained)
    "base": None,
    "plain fine-tune": ["clip_loss_weight=0"],
    "CLIP fine-tune": [],
    "CLIP fine-tune λ 0.1": ["clip_loss_weight=0.1"],  # 10× the config's: what a strong term does
}


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, seed=0, out=RESULTS,
               smoke="configs/tiny.yaml's U-Net as the base (8 updates), 4-update fine-tunes, 2 images per class, "
                     "CAS on 4 per class for 5 updates, no Inception")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms (default: all of {list(ARMS)})")
    p.add_argument("--updates", type=int, default=None, help="fine-tune updates (default: the config's max_train_steps)")
    p.add_argument("--num-per-class", type=int, default=100, help="images per class judged (default 100: N = 1000)")
    p.add_argument("--cas-per-class", type=int, default=300, help="generated images per class the CAS CNN trains on (default 300)")
    p.add_argument("--cas-updates", type=int, default=500, help="CAS classifier updates (default 500, synthetic_data's CPU size)")
    p.add_argument("--cas-seeds", default="0,1,2", help="CAS classifier seeds (default 0,1,2)")
    p.add_argument("--work-dir", default="runs/clip_loss", help="where the fine-tunes are trained (default %(default)s)")
    args = p.parse_args(argv)
    args.arms = args.arms.split(",")
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"error: --arms {unknown} not among {list(ARMS)}")
    args.cas_seeds = [int(s) for s in args.cas_seeds.split(",")]
    if args.smoke:
        args.updates, args.num_per_class, args.cas_per_class, args.cas_updates, args.cas_seeds = 4, 2, 4, 5, [0]
        args.work_dir = str(Path(args.work_dir) / "smoke")
    if not 1 <= args.num_per_class <= args.cas_per_class:
        raise SystemExit(f"error: need 1 <= --num-per-class <= --cas-per-class, got {args.num_per_class}, {args.cas_per_class}")
    return args


def smoke_base(args) -> Path:
    """A class-only tiny model to fine-tune in a smoke run (configs/tiny.yaml, 8 updates)."""
    from pipeline.training.config import load_config

    return train_run(load_config(str(REPO / "configs" / "tiny.yaml"),
                                 ["max_train_steps=8", f"output_dir={Path(args.work_dir) / 'base'}"]))


def folder_name(arm: str) -> str:
    """'CLIP fine-tune λ 0.1' -> 'CLIP-fine-tune-0.1': the arm's run folder."""
    import re

    return re.sub(r"[^A-Za-z0-9.]+", "-", arm).strip("-")


def arm_config(args, arm: str, base: str):
    from pipeline.training.config import load_config

    overrides = [*ARMS[arm], f"init_from={base}", f"seed={args.seed}", f"output_dir={Path(args.work_dir) / folder_name(arm)}"]
    if args.updates:
        overrides += [f"max_train_steps={args.updates}", f"checkpointing_steps={max(1, args.updates // 3)}"]
    if args.smoke:
        overrides += ["max_train_images=256", "train_batch_size=16", "lr_warmup_steps=1", "sample_steps=4"]
    return load_config(str(CONFIG), overrides)


def cas(images, labels, args, test) -> dict:
    """synthetic_data's CNN trained on uint8 `images` with each CAS seed, tested on the test set."""
    import statistics

    from benchmarks.synthetic_data import train_and_test

    accuracies = [train_and_test(images, labels, test.images, test.labels, seed, args.cas_updates, 128, 1e-3)
                  for seed in args.cas_seeds]
    return {"mean": statistics.fmean(accuracies), "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "per_seed": accuracies}


def measure(args, folder: Path, name: str, scorer, test) -> dict:
    """An arm's evaluation, CLIP scores and CAS on one set of images (kept in --work-dir/<arm>-eval/)."""
    import numpy as np

    from pipeline.evaluation.fidelity import evaluate
    from pipeline.models import load_pipeline
    from pipeline.sampling import generate

    kept = Path(args.work_dir) / f"{Path(name).name}-eval" / f"n{args.num_per_class}-cas{args.cas_per_class}x{args.cas_updates}-seed{args.seed}.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    pipe = load_pipeline(str(folder))
    samples = generate(pipe, None, args.cas_per_class, args.seed)
    metrics = evaluate(pipe, args.num_per_class, seed=args.seed, inception=not args.smoke, samples=samples,
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

    from benchmarks.synthetic_data import per_class_subset
    from pipeline.data import load_dataset

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
        if ARMS[arm] is None:
            folder, config = Path(base), None
        else:
            config = arm_config(args, arm, base)
            folder = train_run(config)
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        arms.append({"arm": arm, "model": repo_relative(str(folder)), "overrides": ARMS[arm],
                     "clip_loss_weight": None if config is None else config.clip_loss_weight,
                     "updates": None if config is None else rows[-1]["step"],
                     "train_minutes": None if config is None else rows[-1]["wall_time_s"] / 60,
                     "final_clip_term": None if config is None else rows[-1].get("clip_term"),
                     **measure(args, folder, repo_relative(str(folder)), scorer, test)})
    result = {"config": repo_relative(str(CONFIG)), "base": repo_relative(base), "smoke": args.smoke, "machine": machine,
              "seed": args.seed, "num_per_class": args.num_per_class, "cas_per_class": args.cas_per_class,
              "cas_updates": args.cas_updates, "cas_seeds": args.cas_seeds, "clip_model": repo_relative(scorer.name),
              "floors": floors(args, scorer, test), "arms": arms}
    emit(NAME, result, to_markdown(result), args)
    return result


def verdict(result: dict) -> str:
    """Whether a CLIP fine-tune won on the critic-free metrics (all three of judge-FID, Inception FID, CAS) against the
    plain fine-tune, the rule for making the term a default; the base-to-plain change is set beside it as the size of
    what the same updates without the term do."""
    arms = {a["arm"]: a for a in result["arms"]}
    clip_arms = [a for a in result["arms"] if a["clip_loss_weight"]]
    if "plain fine-tune" not in arms or not clip_arms:
        return "Not decided: the plain fine-tune and a CLIP fine-tune were not both measured."
    plain = arms["plain fine-tune"]
    parts, any_default = [], False
    for clip in clip_arms:
        wins = {"judge-FID": clip["judge_fid"] < plain["judge_fid"],
                "Inception FID": clip["inception_fid"] is not None and clip["inception_fid"] < plain["inception_fid"],
                "CAS": clip["cas"]["mean"] > plain["cas"]["mean"]}
        won = [k for k, v in wins.items() if v]
        lost = [k for k, v in wins.items() if not v]
        any_default |= len(won) == 3
        if len(won) == 3:
            outcome = "wins on all three critic-free metrics (judge-FID, Inception FID, CAS)"
        elif won:
            outcome = f"does not win: it is better on {' and '.join(won)} but not on {' and '.join(lost)}"
        else:
            outcome = "does not win: it is better on none of judge-FID, Inception FID and CAS"
        gamed = "rises" if clip["clip_quality"] > plain["clip_quality"] else "does not rise"
        parts.append(f"At λ = {clip['clip_loss_weight']:g} the CLIP term {outcome}, while the critic's own quality "
                     f"score {gamed} ({plain['clip_quality']:.3f} -> {clip['clip_quality']:.3f}).")
    if "base" in arms:
        base = arms["base"]
        moved = [f"judge-FID {base['judge_fid']:.3f} -> {plain['judge_fid']:.3f}"]
        if base["inception_fid"] is not None:
            moved.append(f"Inception FID {base['inception_fid']:.2f} -> {plain['inception_fid']:.2f}")
        moved.append(f"CAS {100 * base['cas']['mean']:.2f} -> {100 * plain['cas']['mean']:.2f} %")
        parts.append(f"For scale, the same updates without the term moved the base by {', '.join(moved)}; "
                     "differences of that size are within what a fine-tune's own course does (one seed).")
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
    n = r["num_per_class"] * 10
    return "\n\n".join([
        f"# {NAME}: the CLIP-guided loss vs a plain fine-tune{' (smoke run: not a measurement)' if r['smoke'] else ''}",
        f"Fine-tunes of `{r['base']}` by `{r['config']}` (seed {r['seed']}); the critic is `{r['clip_model']}`. Judge "
        f"accuracy, judge-FID and Inception FID at N = {n:,} against the test set (floors: {n:,} real training images); "
        f"CAS: synthetic_data's CNN, {r['cas_updates']} updates of 128 on {r['cas_per_class']} generated images per "
        f"class, tested on the 10,000 test images, seeds {', '.join(map(str, r['cas_seeds']))} (mean ± std; floor: as "
        "many real training images); CLIP quality and agreement are the critic's own scores on the judged images.",
        markdown_table(["arm", "updates", "judge accuracy", "judge-FID", "Inception FID", "CAS %", "CLIP quality",
                        "CLIP agreement"], rows),
        verdict(r),
    ])


if __name__ == "__main__":
    main()
