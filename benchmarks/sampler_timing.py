"""Seconds per image of the samplers that compete for the default, timed together on an idle machine.

quality_vs_steps.py times each row on its own, so a row timed while something else ran is not comparable with the
others. Here every sampler runs in each round (order rotated per round), same weights, same batch of images (10
classes x batch/10), guidance w = 2 at every step (as in the quality table); the median over rounds is reported with
the speed-up over DDPM 100 steps measured in the same run.

  python benchmarks/sampler_timing.py --batch 100 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import REPO, SHIPPED_MODEL_DIR, emit, ensure_repo_on_path, load_average, machine_info, machine_markdown, markdown_table, repo_relative

SETTINGS = {"ddpm:100": ("ddpm", 100), "dpm++:20": ("dpm++", 20), "unipc:10": ("unipc", 10), "dpm++:10": ("dpm++", 10)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="pipeline folder (default: the shipped model)")
    p.add_argument("--batch", type=int, default=100, help="images per call, a multiple of 10 (default 100)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if args.batch < 10 or args.batch % 10 or args.rounds < 1:
        raise SystemExit(f"error: --batch must be a multiple of 10 (got {args.batch}) and --rounds >= 1 (got {args.rounds})")
    ensure_repo_on_path()
    import torch

    from pipeline.models import load_pipeline
    from pipeline.sampling import generate

    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_info(torch.get_num_threads())
    pipe = load_pipeline(args.model)
    generate(pipe, [0], 2, sampler="dpm++", steps=2, guidance=2.0)  # warm-up
    times = {k: [] for k in SETTINGS}
    for r in range(args.rounds):
        order = list(SETTINGS)[r % len(SETTINGS):] + list(SETTINGS)[:r % len(SETTINGS)]
        for key in order:
            sampler, steps = SETTINGS[key]
            start = time.perf_counter()
            generate(pipe, list(range(10)), args.batch // 10, seed=r, sampler=sampler, steps=steps,
                     guidance=2.0, interval=(0, 1), batch_size=args.batch)
            times[key].append((time.perf_counter() - start) / args.batch)
            print(key, r, round(times[key][-1], 4), flush=True)
    machine["load_average_1m_at_end"] = load_average()
    base = statistics.median(times["ddpm:100"])
    rows = [{"setting": k, "seconds_per_image": round(statistics.median(v), 4), "rounds": [round(t, 4) for t in v],
             "speedup_vs_ddpm100": round(base / statistics.median(v), 2)} for k, v in times.items()]
    model = args.model or repo_relative(str(SHIPPED_MODEL_DIR))
    command = f"python benchmarks/sampler_timing.py --batch {args.batch} --rounds {args.rounds}" + (
        f" --threads {args.threads}" if args.threads else "") + (f" --model {args.model}" if args.model else "")
    table = markdown_table(["sampler:steps", "s / image (median)", "rounds", "speed-up vs ddpm:100"],
                           [[r["setting"], r["seconds_per_image"], ", ".join(map(str, r["rounds"])),
                             f"{r['speedup_vs_ddpm100']:.2f}x"] for r in rows])
    markdown = "\n\n".join([
        "# sampler_timing",
        f"Model `{model}`, {args.batch} images per call (10 classes), guidance w = 2 at every step, {args.rounds} "
        "interleaved rounds (order rotated), median.",
        table, f"Reproduce: `{command}`", "Machine:\n" + machine_markdown(machine)])
    emit("sampler_timing", {"model": model, "batch": args.batch, "rounds": args.rounds, "rows": rows, "command": command,
                            "machine": machine}, markdown, args.out)


if __name__ == "__main__":
    main()
