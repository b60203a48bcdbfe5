"""Quality and time per image for samplers, step counts and guidance settings, on one or more trained pipelines.

Every row runs `pipeline.evaluation.fidelity.evaluate` (the code behind `fashion-ddpm evaluate`) with the same seed:
judge accuracy, judge-FID and (unless --no-inception) Inception FID, each beside its real-vs-real floor at equal N,
and wall time per generated image. The first row of each model is its baseline (put 100-step DDPM there); the script
names the fastest setting at >= 5x the baseline's speed whose judge-FID AND Inception FID are within 10 % of it.

A setting is SAMPLER:STEPS[:GUIDANCE][:i=LOW-HIGH][:r=PHI]: a sampler from pipeline.schedulers.SAMPLERS, its steps,
the guidance w, guidance only for noise levels t/T in [LOW, HIGH] (Kynkäänniemi et al. 2024), guidance rescale PHI
(Lin et al. 2023). Examples:

  python benchmarks/quality_vs_steps.py --settings ddpm:100:2,dpm++:20:2,dpm++:10:2 --num-per-class 100
  python benchmarks/quality_vs_steps.py --settings dpm++:20:1,dpm++:20:2,dpm++:20:2:i=0.1-0.7 --no-inception \
      --name guidance_sweep_dpm20
  python benchmarks/quality_vs_steps.py --model A --model B --settings ... --name eps_vs_v    # several models
  python benchmarks/quality_vs_steps.py --smoke                          # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import (
    REPO,
    SHIPPED_MODEL_DIR,
    TINY_UNET,
    device_label,
    emit,
    ensure_repo_on_path,
    load_average,
    machine_info,
    machine_markdown,
    markdown_table,
    repo_relative,
)

DEFAULT_SETTINGS = "ddpm:100,ddim:20,ddim:10,dpm++:20,dpm++:10,dpm++:5,unipc:20,unipc:10,euler:20"


def parse_settings(text: str) -> list[dict]:
    """'dpm++:20:2:i=0.1-0.7:r=0.5,...' -> SamplingSettings.resolve overrides per setting (unset = the model's)."""
    from pipeline.settings import parse_overrides

    try:
        return [parse_overrides(item) for item in text.split(",")]
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def setting_label(overrides: dict) -> str:
    """The row's name: what the setting names (a guidance left out is filled in by run_rows)."""
    label = f"{overrides['sampler']}:{overrides['steps']}" + (f":{overrides['guidance']:g}" if "guidance" in overrides else "")
    if overrides.get("interval"):
        label += f":i={overrides['interval'][0]:g}-{overrides['interval'][1]:g}"
    if overrides.get("rescale") is not None:
        label += f":r={overrides['rescale']:g}"
    return label


def run_rows(pipe, model: str, settings: list[dict], per_class: int, seed: int, inception: bool, verbose: bool,
             on_row=None) -> list[dict]:
    """Evaluates each setting; `on_row(rows_so_far)` runs after every row (the report is rewritten each time)."""
    from pipeline.evaluation.fidelity import evaluate

    rows = []
    for s in settings:
        r = evaluate(pipe, per_class, seed=seed, inception=inception, verbose=verbose, **s)
        rows.append({"model": model, "setting": setting_label({**s, "guidance": r["guidance_scale"]}),
                     "sampler": s["sampler"], "steps": s["steps"], "guidance": r["guidance_scale"],
                     "guidance_interval": r["guidance_interval"], "guidance_rescale": r["guidance_rescale"],
                     "num_images": r["num_images"], "time_per_image_s": r["time_per_image_s"],
                     "judge_accuracy": r["judge_accuracy"], "judge_accuracy_floor": r["judge_accuracy_floor"],
                     "judge_fid": r["judge_fid"], "judge_fid_floor": r["judge_fid_floor"],
                     "inception_fid": r["inception_fid"], "inception_fid_floor": r["inception_fid_floor"],
                     "judge_accuracy_per_class": r["judge_accuracy_per_class"]})
        print(f"{model} {rows[-1]['setting']}: acc {r['judge_accuracy']:.3f} judge-FID {r['judge_fid']:.3f} "
              f"(floor {r['judge_fid_floor']:.3f}) Inception FID {r['inception_fid']} "
              f"{r['time_per_image_s']:.4f} s/img", flush=True)
        if on_row is not None:
            on_row(rows)
    return rows


def compare_to_base(rows: list[dict]) -> dict | None:
    """Speed-up and FID ratios against each model's first row; the fastest row within 10 % on both FIDs."""
    best = None
    for model in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == model]
        base = group[0]
        for r in group:
            r["speedup_vs_base"] = base["time_per_image_s"] / r["time_per_image_s"]
            r["judge_fid_vs_base"] = r["judge_fid"] / base["judge_fid"]
            r["inception_fid_vs_base"] = (None if r["inception_fid"] is None or base["inception_fid"] is None
                                          else r["inception_fid"] / base["inception_fid"])
            ok = (r is not base and r["speedup_vs_base"] >= 5 and r["judge_fid_vs_base"] <= 1.10
                  and (r["inception_fid_vs_base"] is None or r["inception_fid_vs_base"] <= 1.10))
            if ok and (best is None or r["speedup_vs_base"] > best["speedup_vs_base"]):
                best = r
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None, help="pipeline folder (repeat for several; default: shipped)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS)
    p.add_argument("--num-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-inception", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--name", default="quality_vs_steps", help="result file name")
    p.add_argument("--base-from", default=None, help="an earlier result JSON of this script whose first row (same "
                   "model, N and seed) becomes this table's first row: its baseline, not measured again")
    p.add_argument("--include", action="append", default=[], help="an earlier result JSON of this script (same N and "
                   "seed) whose rows are put first, e.g. another model's, for one comparison table")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for <name>.json / .md")
    p.add_argument("--smoke", action="store_true", help="tiny random pipeline, 1 image per class, no Inception")
    args = p.parse_args(argv)
    ensure_repo_on_path()
    settings = parse_settings("ddpm:3:4,dpm++:2:1,dpm++:2:3:i=0.2-0.8:r=0.5" if args.smoke else args.settings)
    per_class = 1 if args.smoke else args.num_per_class
    inception = not (args.smoke or args.no_inception)
    models = args.model or [str(SHIPPED_MODEL_DIR)]
    earlier = None
    if args.base_from:  # checked before any work: a mismatch found after an hour of sampling wastes the hour
        earlier = json.loads(Path(args.base_from).read_text())
        first = earlier["rows"][0]
        mismatch = [f"{k} {a!r} vs {b!r}" for k, a, b in (
            ("model", first["model"], repo_relative(models[0])), ("num_per_class", earlier["num_per_class"], per_class),
            ("seed", earlier.get("seed", 0), args.seed)) if a != b]
        if len(models) > 1 or mismatch:
            raise SystemExit(f"error: --base-from {args.base_from} does not match this run ({'; '.join(mismatch) or 'several models'})")
    included = []
    for path in args.include:
        other = json.loads(Path(path).read_text())
        if (other["num_per_class"], other.get("seed", 0)) != (per_class, args.seed):
            raise SystemExit(f"error: --include {path} has N = {other['num_per_class']} per class and seed "
                             f"{other.get('seed', 0)}; this run has {per_class} and {args.seed}")
        included += [{**row, "from": Path(path).name} for row in other["rows"]]

    import torch

    from pipeline import FashionDDPMPipeline
    from pipeline.models import check_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = check_device(args.device) or "cpu"
    machine = machine_info(torch.get_num_threads())
    machine["device"] = device_label(device)
    rows = included + ([] if earlier is None else [{**earlier["rows"][0], "from": args.base_from}])
    total = len(rows) + len(settings) * len(models)

    def report(all_rows: list[dict]):
        """Writes the JSON and Markdown for the rows measured so far: a run killed after k rows keeps k rows."""
        machine["load_average_1m_at_end"] = load_average()
        best = compare_to_base(all_rows)
        partial = len(all_rows) < total
        result = {"models": list(dict.fromkeys(r["model"] for r in all_rows)), "num_per_class": per_class,
                  "seed": args.seed, "rows": all_rows,
                  "fastest_within_10pct": None if best is None else f"{best['model']} {best['setting']}",
                  "machine": machine, "smoke": args.smoke, "partial": partial}

        def fid(value, floor):
            return "–" if value is None else f"{value:.2f} ({floor:.2f})"

        table = markdown_table(
            ["model", "setting", "s / image", "speed-up", "judge acc. (real)", "judge-FID (floor)", "Inception FID (floor)"],
            [[r["model"], r["setting"], r["time_per_image_s"], f"{r['speedup_vs_base']:.1f}x",
              f"{r['judge_accuracy']:.3f} ({r['judge_accuracy_floor']:.3f})", fid(r["judge_fid"], r["judge_fid_floor"]),
              fid(r["inception_fid"], r["inception_fid_floor"])] for r in all_rows])
        command = (f"python benchmarks/quality_vs_steps.py {' '.join('--include ' + repo_relative(i) for i in args.include)} "
                   f"{' '.join('--model ' + repo_relative(m) for m in models)} "
                   f"--settings {','.join(setting_label(s) for s in settings)} --num-per-class {per_class} --seed {args.seed}"
                   f"{' --no-inception' if args.no_inception else ''}{f' --device {args.device}' if args.device else ''} --name {args.name}")
        markdown = "\n\n".join([
            f"# {args.name}{' (smoke run: tiny random model, not a real measurement)' if args.smoke else ''}"
            f"{f' (partial: {len(all_rows)} of {total} rows; the run stopped before the rest)' if partial else ''}",
            f"N = {per_class} per class ({all_rows[0]['num_images']} images) per row, seed {args.seed}; floors = the same "
            f"metric for {all_rows[0]['num_images']} real training images vs the test set. Setting = sampler:steps:guidance"
            "[:i=guidance interval][:r=guidance rescale]; speed-up and ratios against each model's first row.",
            table,
            f"Fastest setting at ≥ 5x its model's first row with judge-FID and Inception FID within 10 %: "
            f"**{result['fastest_within_10pct'] or 'none'}**.",
            f"Reproduce: `{command}`",
            "Machine:\n" + machine_markdown(machine),
        ])
        emit(args.name, result, markdown, args.out)

    for model in models:
        if args.smoke:
            torch.manual_seed(0)
            pipe, source = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET), "random init (smoke)"
        else:
            pipe, source = FashionDDPMPipeline.from_pretrained(model), repo_relative(model)
        pipe.to(device).set_progress_bar_config(disable=True)
        done = list(rows)
        rows += run_rows(pipe, source, settings, per_class, args.seed, inception, verbose=not args.smoke,
                         on_row=lambda new, before=done: report(before + new))


if __name__ == "__main__":
    main()
