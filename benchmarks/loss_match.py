"""Does a throughput setting keep the maths? The training loop with config overrides (--set, e.g. torch_compile and
channels_last) against the same loop without them, from the same seed and data order, over the first --updates updates;
the plain loop from the next seed is the yardstick of how far two runs that differ only by chance drift apart.

Three runs, each its own process on the same device (pipeline.training.trainer.Trainer.update, as train_conditional.py
runs it): `plain` (seed S), `fast` (seed S, the overrides), `plain-next-seed` (seed S + 1). Their losses are averaged over
windows of --window updates; the fast loop *matches* when its largest relative gap to `plain` over the windows is no
larger than the next seed's. Throughput (img/s) of each run is the median over its windows after the first (which holds
compilation and autotuning).

  python -m benchmarks.loss_match --config configs/fashion_mnist.yaml --updates 500 \\
      --set torch_compile=reduce-overhead channels_last=true --out benchmarks/results      # a GPU: ~3 min
  python -m benchmarks.loss_match --smoke                                                  # tiny U-Net, seconds
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import REPO, emit, machine_info, markdown_table, parser, report_to_parent, run_worker, trainer_update, training_values

NAME = "loss_match"
RUNS = ("plain", "fast", "plain-next-seed")


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, seed=0, out=True,
               smoke="tiny U-Net, 8 updates in windows of 2, --set log_every_steps=1 (a setting that changes no maths)")
    p.add_argument("--config", default=str(REPO / "configs/fashion_mnist.yaml"),
                   help="training config (default configs/fashion_mnist.yaml, the default recipe)")
    p.add_argument("--set", nargs="+", default=None, metavar="KEY=VALUE",
                   help="the overrides under test (default torch_compile=reduce-overhead channels_last=true)")
    p.add_argument("--updates", type=int, default=None, help="updates per run (default 500; smoke 8)")
    p.add_argument("--window", type=int, default=None, help="updates per loss window (default 50; smoke 2)")
    p.add_argument("--batch", type=int, default=None, help="images per update (default: the config's; smoke 8)")
    p.add_argument("--name", default=NAME, help="result file name (default %(default)s)")
    harness.add_worker_args(p, RUNS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    smoke = args.smoke
    args.set = args.set or (["log_every_steps=1"] if smoke else ["torch_compile=reduce-overhead", "channels_last=true"])
    args.updates = args.updates or (8 if smoke else 500)
    args.window = args.window or (2 if smoke else 50)
    if args.window < 1 or args.updates < 2 * args.window:
        raise SystemExit(f"error: --updates ({args.updates}) must hold at least two --window ({args.window}) windows, "
                         "window >= 1")
    return args


def build_spec(args) -> dict:
    """The config every run trains (checked here, before any run starts), and the fast run's overrides."""
    from pipeline.training.config import parse_override, validate

    values = training_values(args.config, args.smoke, args.batch, default_batch=256)
    values.update(max_train_steps=args.updates, seed=args.seed)
    try:
        fast = dict(parse_override(o) for o in args.set)
        validate({**values, **fast})
    except ValueError as e:
        raise SystemExit(f"error: --set {' '.join(args.set)}: {e}") from None
    return {"config": values, "fast": fast, "updates": args.updates, "window": args.window, "threads": args.threads,
            "data": "synthetic" if args.smoke else "auto"}


def worker(run: str, spec: dict):
    import torch


    config = dict(spec["config"])
    if run == "fast":
        config.update(spec["fast"])
    if run == "plain-next-seed":
        config["seed"] += 1
    data = harness.training_data(config, spec["data"])
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    window, losses, seconds = spec["window"], [], []
    with tempfile.TemporaryDirectory(prefix="loss-match-") as tmp:
        update, _ = trainer_update({**config, "output_dir": tmp}, data, spec["threads"])
        for start in range(0, spec["updates"], window):
            began = time.perf_counter()
            losses += [update(step) for step in range(start, min(start + window, spec["updates"]))]
            sync()  # once per window: the timing is the device's, not the launch queue's
            seconds.append(time.perf_counter() - began)
    report_to_parent({"run": run, "losses": [float(x) for x in losses], "window_seconds": seconds,
                      "batch": config["train_batch_size"], "seed": config["seed"]})


def window_means(losses: list[float], window: int) -> list[float]:
    return [statistics.fmean(losses[i:i + window]) for i in range(0, len(losses) - window + 1, window)]


def largest_gap(values: list[float], reference: list[float]) -> float:
    """The largest relative difference between two curves of window means."""
    return max(abs(v - r) / abs(r) for v, r in zip(values, reference))


def compare(runs: dict, window: int) -> dict:
    means = {name: window_means(r["losses"], window) for name, r in runs.items()}
    fast_gap, seed_gap = largest_gap(means["fast"], means["plain"]), largest_gap(means["plain-next-seed"], means["plain"])
    speed = {name: statistics.median(r["batch"] * window / s for s in r["window_seconds"][1:]) for name, r in runs.items()}
    return {"window_means": means, "fast_gap": fast_gap, "next_seed_gap": seed_gap, "matched": fast_gap <= seed_gap,
            "final_window_gap": abs(means["fast"][-1] - means["plain"][-1]) / means["plain"][-1],
            "identical_losses": runs["fast"]["losses"] == runs["plain"]["losses"], "images_per_s": speed,
            "speedup": speed["fast"] / speed["plain"]}


def main(argv=None):
    args = parse_args(argv)
    if harness.ran_as_worker(args, worker):
        return
    spec, machine = build_spec(args), machine_info(args.threads)
    runs = {}
    for run in RUNS:
        runs[run] = run_worker(NAME, harness.worker_argv(run, spec), run, args.threads)
        print(f"{run}: last window loss {statistics.fmean(runs[run]['losses'][-args.window:]):.4f}", flush=True)
    result = {"benchmark": NAME, "smoke": args.smoke, "machine": machine,
              "config": os.path.relpath(args.config, REPO) if Path(args.config).is_absolute() else args.config,
              "overrides": args.set, "updates": args.updates, "window": args.window, "seed": args.seed,
              "batch": runs["plain"]["batch"], **compare(runs, args.window), "runs": runs}
    emit(args.name, result, to_markdown(result), args)
    return result


def to_markdown(r: dict) -> str:
    means = r["window_means"]
    rows = [[f"{i * r['window'] + 1}-{(i + 1) * r['window']}", f"{p:.4f}", f"{f:.4f}", f"{n:.4f}"]
            for i, (p, f, n) in enumerate(zip(means["plain"], means["fast"], means["plain-next-seed"]))]
    verdict = ("matches" if r["matched"] else "does NOT match") + " the plain loop"
    return "\n\n".join([
        f"# {NAME}: {' '.join(r['overrides'])}{' (smoke run: not a measurement)' if r['smoke'] else ''}",
        f"`{r['config']}`{' with the tiny U-Net' if r['smoke'] else ''}, batch {r['batch']}, {r['updates']} updates "
        f"from seed {r['seed']}: the loop with "
        f"`{' '.join(r['overrides'])}` **{verdict}**: its largest relative gap to the plain loop over windows of "
        f"{r['window']} updates is {r['fast_gap']:.2%} (the next seed's: {r['next_seed_gap']:.2%}); in the last window "
        f"{r['final_window_gap']:.2%}{'; the losses are bit-identical' if r['identical_losses'] else ''}.",
        markdown_table(["updates", "plain (seed S)", "fast (seed S)", "plain (seed S+1)"], rows),
        markdown_table(["run", "img/s (median over windows after the first)"],
                       [[name, f"{v:.0f}"] for name, v in r["images_per_s"].items()]),
        f"Speed-up of the fast loop: {r['speedup']:.2f}×.",
    ])


if __name__ == "__main__":
    main()
