"""Seconds per image of the samplers that compete for the default, timed together on an idle machine.

quality_vs_steps times each row on its own, so a row timed while something else ran is not comparable with the
others. Here every sampler runs in each round (order rotated per round), same weights, same batch of images (10
classes x batch/10; round r uses seed r), guidance w = 2 at every step (as in the quality table); the median over
rounds is reported with the speed-up over DDPM 100 steps measured in the same run.

  python -m benchmarks.sampler_timing --batch 100 --rounds 3 --threads 2
"""

from __future__ import annotations

import shlex
import statistics
import time

from benchmarks.harness import RESULTS, SHIPPED_MODEL_DIR, emit, markdown_table, parser, repo_relative, torch_machine

NAME = "sampler_timing"
SETTINGS = {"ddpm:100": ("ddpm", 100), "dpm++:20": ("dpm++", 20), "unipc:10": ("unipc", 10), "dpm++:10": ("dpm++", 10)}
GUIDANCE = 2.0  # at every step


def parse_args(argv=None):
    p = parser(NAME, __doc__, model=True, threads=True, out=RESULTS)
    p.add_argument("--batch", type=int, default=100, help="images per call, a multiple of 10 (default 100)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.batch < 10 or args.batch % 10 or args.rounds < 1:
        raise SystemExit(f"error: --batch must be a multiple of 10 (got {args.batch}) and --rounds >= 1 (got {args.rounds})")
    return args


def main(argv=None):
    args = parse_args(argv)
    from pipeline.models import load_pipeline
    from pipeline.sampling import generate
    from pipeline.settings import EVERY_STEP, SamplingSettings

    machine = torch_machine(args.threads)
    pipe = load_pipeline(args.model)
    generate(pipe, [0], 2, sampler="dpm++", steps=2, guidance=GUIDANCE)  # warm-up
    times = {k: [] for k in SETTINGS}
    for r in range(args.rounds):
        order = list(SETTINGS)[r % len(SETTINGS):] + list(SETTINGS)[:r % len(SETTINGS)]
        for key in order:
            settings = SamplingSettings(*SETTINGS[key], GUIDANCE, EVERY_STEP)
            start = time.perf_counter()
            generate(pipe, list(range(10)), args.batch // 10, seed=r, batch_size=args.batch, settings=settings)
            times[key].append((time.perf_counter() - start) / args.batch)
            print(key, r, round(times[key][-1], 4), flush=True)
    base = statistics.median(times["ddpm:100"])
    rows = [{"setting": k, "seconds_per_image": round(statistics.median(v), 4), "rounds": [round(t, 4) for t in v],
             "speedup_vs_ddpm100": round(base / statistics.median(v), 2)} for k, v in times.items()]
    model = args.model or repo_relative(str(SHIPPED_MODEL_DIR))
    command = shlex.join(["python", "-m", f"benchmarks.{NAME}", "--batch", str(args.batch), "--rounds", str(args.rounds),
                          *(["--threads", str(args.threads)] if args.threads else []),
                          *(["--model", args.model] if args.model else [])])
    table = markdown_table(["sampler:steps", "s / image (median)", "rounds", "speed-up vs ddpm:100"],
                           [[r["setting"], r["seconds_per_image"], ", ".join(map(str, r["rounds"])),
                             f"{r['speedup_vs_ddpm100']:.2f}x"] for r in rows])
    markdown = "\n\n".join([
        f"# {NAME}",
        f"Model `{model}`, {args.batch} images per call (10 classes), guidance w = {GUIDANCE:g} at every step, "
        f"{args.rounds} interleaved rounds (order rotated; round r uses seed r), median.",
        table])
    emit(NAME, {"model": model, "batch": args.batch, "rounds": args.rounds, "seeds": list(range(args.rounds)),
                "rows": rows, "command": command, "machine": machine}, markdown, args)


if __name__ == "__main__":
    main()
