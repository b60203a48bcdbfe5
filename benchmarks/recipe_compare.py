"""Recipe questions answered at an equal budget: configs/cpu.yaml's U-Net trained from scratch for --epochs epochs per
run (same seed, same data order, the learning rate schedule ending at 0 in every run), each arm judged at
N = --num-per-class × 10 with judge accuracy (overall and per class), judge-FID (overall and per class) and Inception
FID, each beside its floor at the same N (`pipeline.evaluation.fidelity.evaluate`, the model's default sampling).

A question declares its arms; an arm is a run (a set of config overrides) and which of its exported weights is judged.
Runs are shared between questions (the recipe run is every question's baseline), trained once into --work-dir, resumed
after a kill, and each evaluation is kept beside its weights, so a second question re-uses what a first one made:

  python -m benchmarks.recipe_compare --question ema --epochs 2 --num-per-class 100 --threads 2
  python -m benchmarks.recipe_compare --question loss_weighting --epochs 2 --num-per-class 100 --threads 2
  python -m benchmarks.recipe_compare --question loss_weighting --runs min-snr --train-only --threads 1  # train one run
  python -m benchmarks.recipe_compare --question ema --smoke
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, emit, markdown_table, parser, torch_machine

NAME = "recipe_compare"
RECIPE_EMA_POWER = 0.75  # TrainConfig.ema_power, the recipe's EMA
EXTRA_EMA_POWERS = [0.0, 0.6, 0.9]  # kept side by side in every run (0: the raw weights)
RUNS = {  # run name -> config overrides on top of configs/cpu.yaml
    "recipe": [],
    "min-snr": ["loss_weighting=min_snr", "snr_gamma=5"],
}
WATCHED = ["T-shirt/top", "Pullover", "Coat", "Shirt"]  # the classes the judge confuses most


@dataclass(frozen=True)
class Arm:
    label: str
    run: str
    ema_power: float = RECIPE_EMA_POWER  # which of the run's EMAs is judged


QUESTIONS = {
    "ema": ("How long an EMA? One run, its weights averaged with the warm-up profile decay = 1 - (1 + step)^-power "
            "(capped at 0.9995) for several powers, side by side; power 0 is the raw weights.",
            [Arm("raw weights (no EMA)", "recipe", 0.0), Arm("EMA power 0.6", "recipe", 0.6),
             Arm("EMA power 0.75 (recipe)", "recipe"), Arm("EMA power 0.9", "recipe", 0.9)]),
    "loss_weighting": ("Loss weighting: the plain v-prediction MSE (which weights the noise-prediction error by SNR + 1) "
                       "vs Min-SNR-gamma, gamma = 5 (the noise-prediction error weighted by min(SNR, 5)).",
                       [Arm("v-MSE (recipe)", "recipe"), Arm("Min-SNR-5", "min-snr")]),
}


def parse_args(argv=None):
    p = parser(NAME, __doc__, threads=True, seed=0, out=RESULTS, smoke="configs/tiny.yaml, 8 updates, 2 images per class")
    p.add_argument("--question", required=True, choices=sorted(QUESTIONS), help="which question to answer")
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
    runs = sorted({arm.run for arm in QUESTIONS[args.question][1]})
    args.runs = runs if args.runs is None else args.runs.split(",")
    unknown = sorted(set(args.runs) - set(runs))
    if unknown or args.epochs <= 0 or args.num_per_class < 1:
        raise SystemExit(f"error: --runs {unknown} not among question {args.question!r}'s runs {runs}; --epochs must be "
                         f"> 0 and --num-per-class >= 1" if unknown else "error: --epochs must be > 0 and --num-per-class >= 1")
    return args


def run_config(args, run: str):
    from pipeline.training.config import load_config

    base = REPO / "configs" / ("tiny.yaml" if args.smoke else "cpu.yaml")
    steps_per_epoch = 60000 // 128  # configs/cpu.yaml: batch 128
    updates = 8 if args.smoke else round(args.epochs * steps_per_epoch)  # the smoke run: 8 tiny updates
    overrides = [f"max_train_steps={updates}", f"seed={args.seed}", f"checkpointing_steps={max(1, updates // 4)}",
                 "checkpoints_total_limit=1", "sample_every_steps=0", "report_to=none",
                 f"output_dir={Path(args.work_dir) / run}", f"ema_extra_powers={EXTRA_EMA_POWERS}", *RUNS[run]]
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")
    return load_config(str(base), overrides)


def train(args, run: str) -> Path:
    """Trains `run` (or finishes it after a kill); a finished run is left as it is."""
    from pipeline.training.trainer import Trainer

    config = run_config(args, run)
    folder = Path(config.output_dir)
    card = folder / "train_config.json"
    if (folder / "model_index.json").is_file() and card.is_file() and json.loads(card.read_text()) == _as_dict(config):
        return folder
    trainer = Trainer(config)
    trainer.setup()
    return trainer.run(resume_from_checkpoint="latest")


def _as_dict(config) -> dict:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config)))


def judged(args, arm: Arm) -> dict:
    """The arm's evaluation, made once and kept beside its weights (re-used while N, seed and Inception agree)."""
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.models import load_pipeline

    folder = Path(args.work_dir) / arm.run
    if arm.ema_power != RECIPE_EMA_POWER:
        folder = folder / f"ema-power-{arm.ema_power:g}"
    out = folder / f"evaluation-n{args.num_per_class * 10}-seed{args.seed}"
    kept = out / "metrics.json"
    if kept.is_file():
        result = json.loads(kept.read_text())
        if result["inception"] or args.no_inception:
            return result
    pipe = load_pipeline(str(folder))
    return evaluate(pipe, args.num_per_class, seed=args.seed, inception=not args.no_inception, data_dir=args.data_dir,
                    out_dir=out, model_name=folder.as_posix(), verbose=False)


def summary(args, arm: Arm) -> dict:
    r = judged(args, arm)
    run = Path(args.work_dir) / arm.run
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = metrics[-1]["step"]
    row = {"arm": arm.label, "run": arm.run, "overrides": RUNS[arm.run], "ema_power": arm.ema_power,
           # the EMA's averaging window at the end, 1 / (1 - decay) updates (decay = 1 - (1 + step)^-power, capped)
           "ema_window_updates": min((1 + steps) ** arm.ema_power, 1 / (1 - 0.9995)), "updates": steps,
           "wall_time_s": metrics[-1]["wall_time_s"], "final_loss": metrics[-1]["loss"],
           "batch_size": json.loads((run / "train_config.json").read_text())["train_batch_size"]}
    keys = ["judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor", "inception_fid", "inception_fid_floor",
            "judge_accuracy_per_class", "judge_accuracy_floor_per_class", "judge_fid_per_class",
            "judge_fid_floor_per_class", "time_per_image_s"]
    return {**row, **{k: r.get(k) for k in keys}}


def _ratio(value, floor) -> str:
    return "–" if value is None else f"{value:.2f} ({floor:.2f}, {value / floor:.2f}x)"


def markdown(args, question: str, text: str, rows: list[dict]) -> str:
    table = [[r["arm"], f"{r['judge_accuracy']:.3f} ({r['judge_accuracy_floor']:.3f})",
              _ratio(r["judge_fid"], r["judge_fid_floor"]), _ratio(r["inception_fid"], r["inception_fid_floor"]),
              *[f"{r['judge_accuracy_per_class'][c]:.2f} / {r['judge_fid_per_class'][c]:.1f}" for c in WATCHED],
              f"{r['ema_window_updates']:.0f}", f"{r['wall_time_s'] / 60:.0f}"] for r in rows]
    first = r0 = rows[0]
    floors = ", ".join(f"{c} {first['judge_accuracy_floor_per_class'][c]:.2f} / {first['judge_fid_floor_per_class'][c]:.1f}"
                       for c in WATCHED)
    n = args.num_per_class * 10
    best = min(rows, key=lambda r: (r["judge_fid"], r["inception_fid"] or 0))
    return "\n\n".join([
        f"# {NAME}: {question}{' (smoke run: not a measurement)' if args.smoke else ''}", text,
        f"Every run: {'configs/tiny.yaml' if args.smoke else 'configs/cpu.yaml'}'s U-Net from scratch, {first['updates']} "
        f"updates of {r0['batch_size']} ({args.epochs:g} epochs), seed {args.seed}, the cosine learning rate ending at 0; N = {n} per arm "
        "(the model's default sampling: UniPC 10, w = 2 on [0.17, 0.88]); floors = the same metric for as many real "
        "training images against the test set.",
        markdown_table(["arm", "judge acc. (floor)", "judge-FID (floor, ratio)", "Inception FID (floor, ratio)",
                        *[f"{c} acc. / FID" for c in WATCHED], "EMA window (updates)", "train min"], table),
        f"Per-class floors (accuracy / judge-FID of {args.num_per_class} real training images per class): {floors}.",
        f"Lowest judge-FID: **{best['arm']}**.",
    ])


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    text, arms = QUESTIONS[args.question]
    for run in args.runs:
        train(args, run)
    if args.train_only:
        return None
    rows = [summary(args, arm) for arm in arms]
    result = {"question": args.question, "text": text, "epochs": args.epochs, "num_per_class": args.num_per_class,
              "seed": args.seed, "config": "configs/tiny.yaml" if args.smoke else "configs/cpu.yaml",
              "runs": {name: RUNS[name] for name in sorted({a.run for a in arms})}, "arms": rows, "smoke": args.smoke,
              "machine": machine}
    emit(f"{NAME}_{args.question}", result, markdown(args, args.question, text, rows), args)
    return result


if __name__ == "__main__":
    main()
