"""Recipe questions answered at an equal budget: configs/cpu.yaml's U-Net trained from scratch for --epochs epochs per
run (same seed, same data order, the learning rate schedule ending at 0 in every run), each arm judged at
N = --num-per-class × 10 with judge accuracy (overall and per class), judge-FID (overall and per class) and Inception
FID, each beside its floor at the same N (`pipeline.evaluation.fidelity.evaluate`, the model's default sampling).
With several --seeds every run is trained and judged once per seed (the seed of the weights, the data order and the
judged images) and the table shows the mean with each seed's value beside it.

A question declares its arms; an arm is a run (a set of config overrides) and which of its exported weights is judged.
Runs are shared between questions (the v-MSE run is the EMA question's and the loss question's baseline), trained once into
--work-dir/seed<S>/<run>, resumed after a kill, and each evaluation is kept beside its weights, so a second question
re-uses what a first one made:

  python -m benchmarks.recipe_compare --question ema --epochs 2 --num-per-class 100 --threads 2
  python -m benchmarks.recipe_compare --question loss_weighting --seeds 0,1 --epochs 2 --num-per-class 100 --threads 2
  python -m benchmarks.recipe_compare --question loss_weighting --runs min-snr --seeds 1 --train-only --threads 1
  python -m benchmarks.recipe_compare --question ema --smoke
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, emit, parser, torch_machine, train_config_file, train_run

NAME = "recipe_compare"
EXTRA_EMA_POWERS = [0.0, 0.6, 0.9]  # kept side by side in every run (0: the raw weights)
CPU_MODEL = "pretrained/fashion-ddpm-cpu"  # relative to the repository, where the benchmark runs
RUNS = {  # run name -> config overrides on top of configs/cpu.yaml (each names what it tests: the recipe moves)
    "v-mse": ["loss_weighting=none"],
    "min-snr": ["loss_weighting=min_snr", "snr_gamma=5"],
    # the shipped CPU model (trained 6 epochs with the plain v-MSE) trained on with a fresh optimizer and warm-up
    "tune-v-mse": [f"init_from={CPU_MODEL}", "unet={}", "learning_rate=0.0002", "lr_warmup_steps=100", "loss_weighting=none"],
    "tune-min-snr": [f"init_from={CPU_MODEL}", "unet={}", "learning_rate=0.0002", "lr_warmup_steps=100",
                     "loss_weighting=min_snr", "snr_gamma=5"],
}
WATCHED = ["T-shirt/top", "Pullover", "Coat", "Shirt"]  # the classes the judge confuses most
METRICS = ["judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor", "inception_fid", "inception_fid_floor",
           "time_per_image_s"]
PER_CLASS = ["judge_accuracy_per_class", "judge_accuracy_floor_per_class", "judge_fid_per_class", "judge_fid_floor_per_class"]


@dataclass(frozen=True)
class Arm:
    label: str
    run: str
    ema_power: float | None = None  # which of the run's EMAs is judged: None = its own (the recipe's ema_power)


QUESTIONS = {
    "ema": ("How long an EMA? One run, its weights averaged with the warm-up profile decay = 1 - (1 + step)^-power "
            "(capped at ema_max_decay) for several powers, side by side; power 0 is the raw weights.",
            [Arm("raw weights (no EMA)", "v-mse", 0.0), Arm("EMA power 0.6", "v-mse", 0.6),
             Arm("EMA power 0.75 (recipe)", "v-mse"), Arm("EMA power 0.9", "v-mse", 0.9)]),
    "loss_weighting": ("Loss weighting: the plain v-prediction MSE (which weights the noise-prediction error by SNR + 1) "
                       "vs Min-SNR-gamma, gamma = 5 (the noise-prediction error weighted by min(SNR, 5)).",
                       [Arm("v-MSE", "v-mse"), Arm("Min-SNR-5 (the recipe since)", "min-snr")]),
    "switch_weighting": ("Switching the loss weighting mid-life: a model trained with the plain v-MSE, trained on with "
                         "Min-SNR-5 (what the default model's style training does) against trained on with the v-MSE "
                         "it had, at the same budget.",
                         [Arm("trained on with v-MSE", "tune-v-mse"), Arm("trained on with Min-SNR-5", "tune-min-snr")]),
}


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds must be comma-separated integers such as 0,1, got {text!r}") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SystemExit(f"error: --seeds must be distinct integers >= 0, got {text!r}")
    return seeds


def parse_args(argv=None):
    p = parser(NAME, __doc__, threads=True, out=RESULTS, smoke="configs/tiny.yaml, 8 updates, 2 images per class")
    p.add_argument("--question", required=True, choices=sorted(QUESTIONS), help="which question to answer")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each run is trained and judged once per seed "
                                               "(default 0)")
    p.add_argument("--epochs", type=float, default=2.0, help="training epochs of every run (default 2)")
    p.add_argument("--num-per-class", type=int, default=100, help="generated images per class per arm (default 100)")
    p.add_argument("--runs", default=None, help="comma-separated runs of the question to train (default: all of them)")
    p.add_argument("--train-only", action="store_true", help="train the runs, judge nothing, write no result")
    p.add_argument("--no-inception", action="store_true", help="judge metrics only (no Inception FID)")
    p.add_argument("--work-dir", default="runs/recipe_compare", help="where the runs are trained (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    args = p.parse_args(argv)
    if args.smoke:
        args.num_per_class = 2
    args.seeds = _seed_list(args.seeds)
    runs = sorted({arm.run for arm in QUESTIONS[args.question][1]})
    args.runs = runs if args.runs is None else args.runs.split(",")
    unknown = sorted(set(args.runs) - set(runs))
    if unknown:
        raise SystemExit(f"error: --runs {unknown} not among question {args.question!r}'s runs {runs}")
    if not args.epochs > 0:
        raise SystemExit(f"error: --epochs must be > 0, got {args.epochs}")
    if args.num_per_class < 1:
        raise SystemExit(f"error: --num-per-class must be >= 1, got {args.num_per_class}")
    return args


def run_dir(args, run: str, seed: int) -> Path:
    return Path(args.work_dir) / f"seed{seed}" / run


def run_config(args, run: str, seed: int):
    from pipeline.training.config import load_config

    base = str(REPO / train_config_file(args.smoke))
    steps_per_epoch = 60000 // load_config(base, []).train_batch_size
    updates = 8 if args.smoke else round(args.epochs * steps_per_epoch)  # the smoke run: 8 tiny updates
    overrides = [f"max_train_steps={updates}", f"seed={seed}", f"checkpointing_steps={max(1, updates // 4)}",
                 "checkpoints_total_limit=1", "sample_every_steps=0", "report_to=none",
                 f"output_dir={run_dir(args, run, seed)}", f"ema_extra_powers={EXTRA_EMA_POWERS}", *RUNS[run]]
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")
    return load_config(base, overrides)


def train(args, run: str, seed: int) -> Path:
    """Trains `run` (or finishes it after a kill); a finished run with the same config is left as it is."""
    return train_run(run_config(args, run, seed))


def _weights(args, arm: Arm, seed: int) -> Path:
    folder = run_dir(args, arm.run, seed)
    return folder if arm.ema_power is None else folder / f"ema-power-{arm.ema_power:g}"


def judged(args, arm: Arm, seed: int) -> dict:
    """The arm's evaluation, made once and kept beside its weights (re-used while N, seed and Inception agree)."""
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.models import load_pipeline

    folder = _weights(args, arm, seed)
    out = folder / f"evaluation-n{args.num_per_class * 10}-seed{seed}"
    kept = out / "metrics.json"
    if kept.is_file():
        result = json.loads(kept.read_text())
        if result["inception"] or args.no_inception:
            return result
    pipe = load_pipeline(str(folder))
    return evaluate(pipe, args.num_per_class, seed=seed, inception=not args.no_inception, data_dir=args.data_dir,
                    out_dir=out, model_name=folder.as_posix(), verbose=False)


def summary(args, arm: Arm, seed: int) -> dict:
    """One seed of an arm: its run's length and cost, and the evaluation's metrics."""
    r = judged(args, arm, seed)
    run = run_dir(args, arm.run, seed)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run / "train_config.json").read_text())
    steps = metrics[-1]["step"]
    power = config["ema_power"] if arm.ema_power is None else arm.ema_power
    return {"seed": seed, "ema_power": power, "updates": steps, "batch_size": config["train_batch_size"],
            # the EMA's averaging window at the end, 1 / (1 - decay) updates (decay = 1 - (1 + step)^-power, capped)
            "ema_window_updates": min((1 + steps) ** power, 1 / (1 - config["ema_max_decay"])),
            "wall_time_s": metrics[-1]["wall_time_s"], "final_loss": metrics[-1]["loss"],
            **{k: r.get(k) for k in METRICS + PER_CLASS}}


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def arm_result(args, arm: Arm) -> dict:
    """An arm over every seed: each seed's summary, and the mean of each metric (per class too)."""
    seeds = [summary(args, arm, seed) for seed in args.seeds]
    first = seeds[0]
    means = {k: _mean([s[k] for s in seeds]) for k in METRICS + ["final_loss", "wall_time_s", "ema_window_updates"]}
    means.update({k: {c: _mean([s[k][c] for s in seeds]) for c in first[k]} for k in PER_CLASS})
    return {"arm": arm.label, "run": arm.run, "overrides": RUNS[arm.run], "ema_power": first["ema_power"],
            "updates": first["updates"], "batch_size": first["batch_size"], **means, "per_seed": seeds}


def _beside(value, floor, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f} (floor {floor:.{digits}f}" + (f", {value / floor:.2f}×)" if floor > 0 else ")")


def arm_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """The question's table (header, rows): each arm's mean over seeds beside its floor, each seed's FIDs, the watched
    classes' accuracy / judge-FID, the EMA's window and the training time. docs/results.md renders the same table."""
    several = len(result["seeds"]) > 1
    header = ["arm", "judge acc.", "judge-FID", "Inception FID", *(["judge-FID / Inception FID per seed"] if several else []),
              *[f"{c} acc. / judge-FID" for c in WATCHED], "EMA window (updates)", "train min"]
    rows = []
    for a in result["arms"]:
        per_seed = [", ".join("–" if s[k] is None else f"{s[k]:.2f}" for s in a["per_seed"]) for k in ("judge_fid", "inception_fid")]
        rows.append([a["arm"], _beside(a["judge_accuracy"], a["judge_accuracy_floor"], 3),
                     _beside(a["judge_fid"], a["judge_fid_floor"], 2), _beside(a["inception_fid"], a["inception_fid_floor"], 2),
                     *([" / ".join(per_seed)] if several else []),
                     *[f"{a['judge_accuracy_per_class'][c]:.2f} / {a['judge_fid_per_class'][c]:.1f}" for c in WATCHED],
                     f"{a['ema_window_updates']:.0f}", f"{a['wall_time_s'] / 60:.0f}"])
    return header, rows


def setup_text(result: dict) -> str:
    """One sentence on how every arm was made and judged."""
    a = result["arms"][0]
    seeds = result["seeds"]
    start = next((o.split("=", 1)[1] for o in a["overrides"] if o.startswith("init_from=")), None)
    start = (f"`{start}`'s weights with a fresh optimizer, learning rate "
             f"{next(o.split('=', 1)[1] for o in a['overrides'] if o.startswith('learning_rate='))}" if start
             else f"`{result['config']}`'s U-Net from scratch")
    return (f"Every run: {start}, {a['updates']} updates of {a['batch_size']} "
            f"({result['epochs']:g} epoch{'' if result['epochs'] == 1 else 's'}), "
            f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} (each "
            f"seed its own weights, data order and judged images), the cosine learning rate ending at 0; "
            f"N = {result['num_per_class'] * 10} per arm and seed (the model's default sampling: UniPC 10, w = 2 on "
            "[0.17, 0.88]); floors = the same metric for as many real training images against the test set"
            f"{', averaged over the seeds' if len(seeds) > 1 else ''}.")


def markdown(result: dict) -> str:
    from benchmarks.harness import markdown_table

    first = result["arms"][0]
    floors = ", ".join(f"{c} {first['judge_accuracy_floor_per_class'][c]:.2f} / {first['judge_fid_floor_per_class'][c]:.1f}"
                       for c in WATCHED)
    best = min(result["arms"], key=lambda r: (r["judge_fid"], r["inception_fid"] or 0))
    return "\n\n".join([
        f"# {NAME}: {result['question']}{' (smoke run: not a measurement)' if result['smoke'] else ''}", result["text"],
        setup_text(result), markdown_table(*arm_table(result)),
        f"Per-class floors (accuracy / judge-FID of {result['num_per_class']} real training images per class): {floors}.",
        f"Lowest mean judge-FID: **{best['arm']}**.",
    ])


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    text, arms = QUESTIONS[args.question]
    for seed in args.seeds:
        for run in args.runs:
            train(args, run, seed)
    if args.train_only:
        return None
    result = {"question": args.question, "text": text, "epochs": args.epochs, "num_per_class": args.num_per_class,
              "seeds": args.seeds, "config": train_config_file(args.smoke),
              "runs": {name: RUNS[name] for name in sorted({a.run for a in arms})},
              "arms": [arm_result(args, arm) for arm in arms], "smoke": args.smoke, "machine": machine}
    emit(f"{NAME}_{args.question}", result, markdown(result), args)
    return result


if __name__ == "__main__":
    main()
