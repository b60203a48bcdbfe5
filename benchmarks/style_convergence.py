"""Does the style input change how training converges? A class-only and a class + style model trained from scratch at
an equal budget: the same U-Net (configs/cpu.yaml's), data order, seed and updates; only the condition differs.

Each run keeps a checkpoint every --updates / --evals updates; at each, the EMA weights are exported and scored with
`pipeline.evaluation.fidelity.evaluate` (judge accuracy and judge-FID at N = --num-per-class × 10, beside the floor at
that N; the style model at style=None, every attribute free, as a class-only request). The training loss of both runs
comes from their metrics.jsonl. One figure, loss and judge-FID against updates:

  python -m benchmarks.style_convergence --updates 400 --evals 4 --num-per-class 20 --threads 2
  python -m benchmarks.style_convergence --smoke
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, emit, markdown_table, parser, torch_machine, train_config_file

NAME = "style_convergence"
STYLE_ATTRIBUTES = ["width", "height", "area", "slant", "thickness", "brightness", "pattern"]
VARIANTS = {"class only": [], "class + style": STYLE_ATTRIBUTES}


def parse_args(argv=None):
    p = parser(NAME, __doc__, threads=True, seed=0, out=RESULTS, smoke="configs/tiny.yaml, 8 updates, 2 evaluations")
    p.add_argument("--updates", type=int, default=400, help="optimizer updates of each run (default 400)")
    p.add_argument("--batch-size", type=int, default=64, help="images per update (default 64)")
    p.add_argument("--evals", type=int, default=4, help="evaluated checkpoints per run, evenly spaced (default 4)")
    p.add_argument("--num-per-class", type=int, default=20, help="generated images per class at each evaluation")
    p.add_argument("--work-dir", default="runs/style_convergence", help="where the two runs are trained (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    args = p.parse_args(argv)
    if args.smoke:
        args.updates, args.batch_size, args.evals, args.num_per_class = 8, 16, 2, 1
    if args.updates < 1 or args.evals < 1 or args.updates % args.evals or args.num_per_class < 1:
        raise SystemExit(f"error: --updates ({args.updates}) must be a positive multiple of --evals ({args.evals}), "
                         "and --num-per-class >= 1")
    return args


def run_config(args, name: str, attributes: list[str]):
    from pipeline.training.config import load_config

    folder = Path(args.work_dir) / name.replace(" + ", "-").replace(" ", "-")
    overrides = [f"max_train_steps={args.updates}", f"train_batch_size={args.batch_size}", f"seed={args.seed}",
                 f"checkpointing_steps={args.updates // args.evals}", f"checkpoints_total_limit={args.evals}",
                 "sample_every_steps=0", "report_to=none", f"output_dir={folder}", f"style_attributes={attributes}",
                 f"log_every_steps={max(1, min(20, args.updates // 20))}"]
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")
    return load_config(str(REPO / train_config_file(args.smoke)), overrides)


def trained_curve(args, name: str, attributes: list[str]) -> dict:
    """Trains one run, then scores the EMA weights of each of its checkpoints."""
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.training import checkpoints
    from pipeline.training.trainer import Trainer

    config = run_config(args, name, attributes)
    trainer = Trainer(config)
    trainer.setup()
    out = trainer.run()
    evaluations = []
    for path in checkpoints.list_checkpoints(trainer.checkpoint_dir):
        # the trained state of each checkpoint loaded into the run's own trainer: its EMA weights are what is scored
        state = checkpoints.resume(trainer.accelerator, trainer.checkpoint_dir, str(path))
        r = evaluate(trainer.ema_pipeline(), args.num_per_class, seed=args.seed, inception=False, verbose=False)
        evaluations.append({"step": state["step"], "judge_accuracy": r["judge_accuracy"], "judge_fid": r["judge_fid"],
                            "judge_fid_floor": r["judge_fid_floor"]})
        print(f"{name} @ {state['step']}: judge-FID {r['judge_fid']:.3f} (floor {r['judge_fid_floor']:.3f}), "
              f"accuracy {r['judge_accuracy']:.3f}", flush=True)
    loss = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"name": name, "style_attributes": attributes, "wall_time_s": loss[-1]["wall_time_s"],
            "loss": [{"step": r["step"], "loss": r["loss"]} for r in loss], "evaluations": evaluations}


def figure(runs: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in runs:
        left.plot([r["step"] for r in run["loss"]], [r["loss"] for r in run["loss"]], label=run["name"])
        right.plot([e["step"] for e in run["evaluations"]], [e["judge_fid"] for e in run["evaluations"]], "o-",
                   label=run["name"])
    floor = runs[0]["evaluations"][-1]["judge_fid_floor"]
    right.axhline(floor, color="grey", ls="--", label=f"floor (real images, same N) {floor:.2f}")
    left.set(xlabel="updates", ylabel="training loss (v-prediction MSE)", title="loss")
    right.set(xlabel="updates", ylabel="judge-FID", yscale="log", title="judge-FID (style model at style=None)")
    for ax in (left, right):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    runs = [trained_curve(args, name, attributes) for name, attributes in VARIANTS.items()]
    n = args.num_per_class * 10
    title = (f"{'configs/tiny.yaml (smoke)' if args.smoke else 'configs/cpu.yaml U-Net'} from scratch, {args.updates} "
             f"updates of {args.batch_size}, seed {args.seed}; judge-FID at N = {n}")
    out = Path(args.out) if args.out else None
    plot = figure(runs, (out or Path(args.work_dir)) / f"{NAME}.png", title)
    result = {"updates": args.updates, "batch_size": args.batch_size, "num_per_class": args.num_per_class,
              "seed": args.seed, "config": train_config_file(args.smoke), "runs": runs,
              "figure": plot.name, "smoke": args.smoke, "machine": machine}
    rows = [[run["name"], e["step"], f"{e['judge_accuracy']:.3f}", f"{e['judge_fid']:.3f} ({e['judge_fid_floor']:.3f})",
             f"{next(r['loss'] for r in reversed(run['loss']) if r['step'] <= e['step']):.4f}"]
            for run in runs for e in run["evaluations"]]
    markdown = "\n\n".join([f"# {NAME}{' (smoke run: not a measurement)' if args.smoke else ''}", title,
                            markdown_table(["model", "updates", "judge accuracy", "judge-FID (floor)", "loss (last logged)"],
                                           rows), f"![loss and judge-FID against updates]({plot.name})"])
    emit(NAME, result, markdown, args)
    return result


if __name__ == "__main__":
    main()
