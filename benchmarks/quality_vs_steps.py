"""Quality and time per image for each sampler / step count / guidance scale, on one trained pipeline.

For every setting it runs `pipeline.evaluate.evaluate` (the code behind `fashion-ddpm evaluate`) with the same seeds:
judge accuracy, judge-FID and (unless --no-inception) Inception FID, each beside its real-vs-real floor at equal N,
and wall time per generated image. Then it names the fastest sampler whose judge-FID is within 10 % of 100-step DDPM.

Usage:
  python benchmarks/quality_vs_steps.py --out benchmarks/results                     # the shipped model, N=30/class
  python benchmarks/quality_vs_steps.py --settings ddpm:100:1,ddpm:100:3 --name guidance_sweep --out ...
  python benchmarks/quality_vs_steps.py --smoke                                      # tiny random model, seconds
A setting is SAMPLER:STEPS[:GUIDANCE] with SAMPLER from pipeline.schedulers.SAMPLERS.
"""

from __future__ import annotations

import argparse

from _common import REPO, emit, ensure_repo_on_path, load_average, machine_info, machine_markdown, markdown_table

DEFAULT_SETTINGS = "ddpm:100,ddim:50,ddim:20,ddim:10,dpm++:20,dpm++:10,dpm++:5,unipc:10"
SMOKE_UNET = {"block_out_channels": (8, 16, 16), "norm_num_groups": 4, "layers_per_block": 1}


def parse_settings(text: str, default_guidance: float) -> list[tuple[str, int, float]]:
    settings = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) not in (2, 3):
            raise SystemExit(f"error: setting {item!r} must be SAMPLER:STEPS[:GUIDANCE]")
        settings.append((parts[0], int(parts[1]), float(parts[2]) if len(parts) == 3 else default_guidance))
    return settings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "pretrained" / "fashion-ddpm-cpu"))
    p.add_argument("--settings", default=DEFAULT_SETTINGS)
    p.add_argument("--guidance", type=float, default=4.0, help="guidance for settings that name none (the pipeline default)")
    p.add_argument("--num-per-class", type=int, default=30)
    p.add_argument("--no-inception", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--name", default="quality_vs_steps", help="result file name")
    p.add_argument("--base-from", default=None, help="an earlier result JSON whose first row (e.g. ddpm 100, measured "
                   "with the same model, N and seeds) becomes this table's first row and speed/FID baseline")
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="tiny random pipeline, 1 image per class, no Inception")
    args = p.parse_args(argv)
    ensure_repo_on_path()
    import torch

    from pipeline import FashionDDPMPipeline
    from pipeline.evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        torch.manual_seed(0)
        pipe, source = FashionDDPMPipeline.from_config_dict(unet=SMOKE_UNET), "random init (smoke)"
        settings, per_class, inception = parse_settings("ddpm:3,dpm++:2:1", args.guidance), 1, False
    else:
        pipe, source = FashionDDPMPipeline.from_pretrained(args.model), args.model
        settings, per_class, inception = parse_settings(args.settings, args.guidance), args.num_per_class, not args.no_inception
    pipe.set_progress_bar_config(disable=True)
    machine = machine_info(torch.get_num_threads())

    rows = []
    for sampler, steps, guidance in settings:
        r = evaluate(pipe, per_class, guidance, sampler, steps, seed=0, inception=inception, verbose=not args.smoke)
        rows.append({"sampler": sampler, "steps": steps, "guidance": guidance, "num_images": r["num_images"],
                     "time_per_image_s": r["time_per_image_s"], "judge_accuracy": r["judge_accuracy"],
                     "judge_accuracy_floor": r["judge_accuracy_floor"], "judge_fid": r["judge_fid"],
                     "judge_fid_floor": r["judge_fid_floor"], "inception_fid": r["inception_fid"],
                     "inception_fid_floor": r["inception_fid_floor"], "judge_accuracy_per_class": r["judge_accuracy_per_class"]})
    machine["load_average_1m_at_end"] = load_average()
    if args.base_from:
        import json

        earlier = json.loads(open(args.base_from).read())
        if earlier["num_per_class"] != per_class or earlier["model"] != source:
            raise SystemExit(f"error: {args.base_from} was measured on {earlier['model']} with N={earlier['num_per_class']}")
        rows.insert(0, {**earlier["rows"][0], "from": args.base_from})

    base = next((r for r in rows if r["sampler"] == "ddpm" and r["steps"] == 100), rows[0])
    for r in rows:
        r["speedup_vs_base"] = base["time_per_image_s"] / r["time_per_image_s"]
        r["judge_fid_vs_base"] = r["judge_fid"] / base["judge_fid"]
    fast = [r for r in rows if r["speedup_vs_base"] >= 5 and r["judge_fid_vs_base"] <= 1.10 and r["guidance"] == base["guidance"]]
    best = max(fast, key=lambda r: r["speedup_vs_base"]) if fast else None
    result = {"model": source, "num_per_class": per_class, "base": f"{base['sampler']} {base['steps']}", "rows": rows,
              "fastest_within_10pct": None if best is None else f"{best['sampler']} {best['steps']}",
              "machine": machine, "smoke": args.smoke}

    def fid(value, floor):
        return "–" if value is None else f"{value:.2f} (floor {floor:.2f})"

    table = markdown_table(
        ["sampler", "steps", "guidance", "s / image", "speed-up", "judge acc. (real)", "judge-FID (floor)", "Inception FID (floor)"],
        [[r["sampler"], r["steps"], r["guidance"], r["time_per_image_s"], f"{r['speedup_vs_base']:.1f}x",
          f"{r['judge_accuracy']:.3f} ({r['judge_accuracy_floor']:.3f})", fid(r["judge_fid"], r["judge_fid_floor"]),
          fid(r["inception_fid"], r["inception_fid_floor"])] for r in rows])
    markdown = "\n\n".join([
        f"# {args.name}{' (smoke run: tiny random model, not a real measurement)' if args.smoke else ''}",
        f"Model `{source}`, N = {per_class} per class ({rows[0]['num_images']} images) per row, seeds 0..N-1, "
        f"floors = the same metric for {rows[0]['num_images']} real training images vs the test set.",
        table,
        (f"Fastest sampler at ≥ 5x the speed of {result['base']} with judge-FID within 10 %: "
         f"**{result['fastest_within_10pct'] or 'none'}**." if len({(s, n) for s, n, _ in settings}) > 1 else
         "Same sampler and steps in every row: a guidance sweep."),
        f"Reproduce: `python benchmarks/quality_vs_steps.py --settings {','.join(f'{s}:{n}:{g:g}' for s, n, g in settings)} "
        f"--num-per-class {per_class}{' --no-inception' if not inception else ''}`",
        "Machine:\n" + machine_markdown(machine),
    ])
    emit(args.name, result, markdown, args.out)


if __name__ == "__main__":
    main()
