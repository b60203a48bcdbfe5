"""CPU throughput under glibc's malloc and under tcmalloc: sampling at several batch sizes and a training update.

glibc's malloc hands every freed block above its largest mmap threshold (32 MB) back to the kernel, so at a large batch
each U-Net pass maps fresh pages that the kernel must zero: kernel time, not arithmetic. tcmalloc keeps them. Each
scenario runs in its own worker process, once with LD_PRELOAD naming tcmalloc and once without, the two alternating
over rounds (median reported); a worker also reports its user and kernel CPU seconds.

  sample B    `generate` of B images in one batch with the model's default sampling (after one warm-up batch)
  train       train_throughput's "project" worker: Trainer.update at configs/cpu.yaml's batch (128)

  python -m benchmarks.allocator --threads 2 --out benchmarks/results
  python -m benchmarks.allocator --smoke
"""

from __future__ import annotations

import ctypes.util
import resource
import sys
import time

from benchmarks import harness
from benchmarks.harness import REPO, SMOKE_MODEL, emit, machine_info, markdown_table, median, parser, run_worker, smoke_pipeline

NAME = "allocator"
MODEL = "pretrained/fashion-ddpm-cpu"


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model=True, model_default=MODEL, threads=2, out=True,
               smoke="the tiny U-Net, a batch of 2, 2 training updates, 1 round")
    p.add_argument("--batches", default="10,100,500", help="sampling batch sizes, comma-separated (default 10,100,500)")
    p.add_argument("--train-steps", type=int, default=5, help="timed training updates (default 5, after 2 warm-up)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each allocator once per scenario (default 3)")
    p.add_argument("--tcmalloc", default=None, help="the tcmalloc library to preload (default: the system's, found by "
                                                     "name; Debian: apt-get install libtcmalloc-minimal4)")
    harness.add_worker_args(p, ("sample",))
    args = p.parse_args(argv)
    if args.worker:
        return args
    args.model = args.model or MODEL
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        p.error(f"--batches must be comma-separated whole numbers such as 10,100,500, got {args.batches!r}")
    if args.smoke:
        args.batches, args.train_steps, args.rounds = [2], 2, 1
    if min(args.batches + [args.train_steps, args.rounds]) < 1:
        p.error("--batches, --train-steps and --rounds must be >= 1")
    args.tcmalloc = args.tcmalloc or ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")
    if not args.tcmalloc:
        p.error("no tcmalloc library found: apt-get install libtcmalloc-minimal4 (Debian), or give --tcmalloc PATH")
    return args


def cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def sample_worker(spec: dict):
    """Images per second of one `generate` call of `batch` images, after one warm-up call."""
    import torch

    from pipeline.models import load_pipeline
    from pipeline.sampling import generate

    torch.set_num_threads(spec["threads"])
    pipe = smoke_pipeline() if spec["smoke"] else load_pipeline(spec["model"])
    batch = spec["batch"]
    per_class = -(-batch // len(pipe.class_names))
    generate(pipe, None, per_class, 900_000, batch_size=batch)  # warm-up
    user, kernel = cpu_seconds()
    start = time.perf_counter()
    made = generate(pipe, None, per_class, 900_000, batch_size=batch)
    elapsed = time.perf_counter() - start
    user2, kernel2 = cpu_seconds()
    harness.report_to_parent({"images_per_s": len(made) / elapsed, "seconds": elapsed, "images": len(made),
                      "user_s": user2 - user, "kernel_s": kernel2 - kernel, "malloc": harness.malloc_name()})


def train_spec(args) -> dict:
    """The spec of train_throughput's `--worker project` (a fresh process timing `Trainer.update`): configs/cpu.yaml's
    workload on random images (the same compute as Fashion-MNIST; the data's source is not what is measured)."""
    values = harness.training_values(REPO / "configs" / "cpu.yaml", args.smoke)
    warmup = 1 if args.smoke else 2
    values["max_train_steps"] = warmup + args.train_steps
    return {"config": values, "batch": values["train_batch_size"], "steps": args.train_steps, "warmup": warmup,
            "threads": args.threads, "data": "synthetic"}


def main(argv=None):
    args = parse_args(argv)
    if harness.ran_as_worker(args, lambda _, spec: sample_worker(spec)):
        return
    machine = machine_info(args.threads)
    allocators = {"glibc": {}, "tcmalloc": {"LD_PRELOAD": args.tcmalloc}}
    scenarios = [(f"sample {b}", NAME, harness.worker_argv("sample", {"batch": b, "model": args.model,
                  "smoke": args.smoke, "threads": args.threads})) for b in args.batches]
    scenarios.append(("train", "train_throughput", harness.worker_argv("project", train_spec(args))))
    runs = {(s, a): [] for s, *_ in scenarios for a in allocators}
    for r in range(args.rounds):
        for scenario, module, worker_argv in scenarios:
            for name in (list(allocators) if r % 2 == 0 else list(allocators)[::-1]):
                result = run_worker(module, worker_argv, f"{scenario} ({name})", args.threads, allocators[name])
                runs[(scenario, name)].append(result)
                print(f"round {r + 1}: {scenario} {name}: {result['images_per_s']:.1f} img/s", file=sys.stderr, flush=True)
    rows = []
    for scenario, *_ in scenarios:
        row = {"scenario": scenario}
        for name in allocators:
            done = runs[(scenario, name)]
            row[name] = {"images_per_s": median([x["images_per_s"] for x in done]),
                         "kernel_share": median([x["kernel_s"] / (x["user_s"] + x["kernel_s"]) for x in done])
                         if "kernel_s" in done[0] else None, "rounds": [x["images_per_s"] for x in done],
                         "malloc_seen": done[0].get("malloc")}  # what the worker found loaded (sampling workers)
        row["speedup"] = row["tcmalloc"]["images_per_s"] / row["glibc"]["images_per_s"]
        rows.append(row)
    result = {"model": SMOKE_MODEL if args.smoke else args.model, "tcmalloc": args.tcmalloc,
              "threads": args.threads, "rounds": args.rounds, "smoke": args.smoke, "rows": rows, "machine": machine}
    emit(NAME, result, to_markdown(result), args)
    return result


def to_markdown(r: dict) -> str:
    def share(v):
        return "–" if v is None else f"{v:.0%}"

    cells = [[row["scenario"], f"{row['glibc']['images_per_s']:.1f}", share(row["glibc"]["kernel_share"]),
              f"{row['tcmalloc']['images_per_s']:.1f}", share(row["tcmalloc"]["kernel_share"]), f"{row['speedup']:.2f}×"]
             for row in r["rows"]]
    return (f"## {NAME}: glibc malloc against tcmalloc, `{r['model']}`, {r['threads']} threads"
            + (" (smoke run: not a measurement)" if r["smoke"] else "") + "\n\n"
            f"Images per second (sampling: images made; training: images per update × updates/s), median of "
            f"{r['rounds']} alternating rounds, each in a fresh process; the kernel's share of the worker's CPU time "
            f"beside it. tcmalloc: `LD_PRELOAD={r['tcmalloc']}`.\n\n"
            + markdown_table(["scenario", "glibc img/s", "glibc kernel share", "tcmalloc img/s", "tcmalloc kernel share",
                              "speed-up"], cells))


if __name__ == "__main__":
    main()
