"""Quality and time per image for samplers, step counts and guidance settings, on one or more trained pipelines.

Every row runs `pipeline.evaluation.fidelity.evaluate` (the code behind `fashion-ddpm evaluate`) with the same seed:
judge accuracy, judge-FID and (unless --no-inception) Inception FID, each beside its real-vs-real floor at equal N,
and wall time per generated image. The first row of each model is its baseline (put 100-step DDPM there); the script
names the fastest setting at >= 5x the baseline's speed whose judge-FID AND Inception FID are within 10 % of it.

A setting is SAMPLER:STEPS[:GUIDANCE][:i=LOW-HIGH][:r=PHI]: a sampler from pipeline.schedulers.SAMPLERS, its steps,
the guidance w, guidance only for noise levels t/T in [LOW, HIGH] (Kynkäänniemi et al. 2024), guidance rescale PHI
(Lin et al. 2023). Examples:

  python -m benchmarks.quality_vs_steps --settings ddpm:100:2,dpm++:20:2,dpm++:10:2 --num-per-class 100
  python -m benchmarks.quality_vs_steps --settings dpm++:20:1,dpm++:20:2,dpm++:20:2:i=0.1-0.7 --no-inception \
      --name guidance_sweep_dpm20
  python -m benchmarks.quality_vs_steps --model A --model B --settings ... --name eps_vs_v    # several models
  python -m benchmarks.quality_vs_steps --model pretrained/fashion-ddpm-gpu --guide pretrained/fashion-ddpm-cpu \
      --settings unipc:10:1.5,unipc:10:1.5:a=0.5 --seed 1 --name autoguidance_seed1   # a guide U-Net (autoguidance)
  python -m benchmarks.quality_vs_steps --smoke                          # tiny random model, seconds
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from benchmarks.harness import RESULTS, SHIPPED_MODEL_DIR, benchmark_pipeline, emit, markdown_table, parser, repo_relative, torch_machine

NAME = "quality_vs_steps"
DEFAULT_SETTINGS = "ddpm:100,ddim:20,ddim:10,dpm++:20,dpm++:10,dpm++:5,unipc:20,unipc:10,euler:20"


def parse_settings(text: str) -> list[dict]:
    """'dpm++:20:2:i=0.1-0.7:r=0.5,...' -> SamplingSettings.resolve overrides per setting (unset = the model's)."""
    from pipeline.settings import parse_overrides

    try:
        return [parse_overrides(item) for item in text.split(",")]
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def setting_label(overrides: dict) -> str:
    """A setting as it was asked for on the command line ('ddpm:100:2' = the model's own interval), so the recorded
    command reproduces the run. A row is named by what it ran: `SamplingSettings.label()` of its resolved settings."""
    label = f"{overrides['sampler']}:{overrides['steps']}" + (f":{overrides['guidance']:g}" if "guidance" in overrides else "")
    if overrides.get("interval"):
        label += f":i={overrides['interval'][0]:g}-{overrides['interval'][1]:g}"
    if overrides.get("rescale") is not None:
        label += f":r={overrides['rescale']:g}"
    for key, mark in (("style_guidance", "s"), ("guide", "a")):
        if overrides.get(key) is not None:
            label += f":{mark}={overrides[key]:g}"
    return label


def run_rows(pipe, model: str, settings: list[dict], per_class: int, seed: int, inception: bool, verbose: bool,
             on_row=None) -> list[dict]:
    """Evaluates each setting; `on_row(rows_so_far)` runs after every row (the report is rewritten each time)."""
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.settings import SamplingSettings

    rows = []
    for s in settings:
        r = evaluate(pipe, per_class, seed=seed, inception=inception, verbose=verbose, **s)
        rows.append({"model": model, "setting": SamplingSettings.from_json(r).label(),
                     "sampler": s["sampler"], "steps": s["steps"], "guidance": r["guidance_scale"],
                     "guidance_interval": r["guidance_interval"], "guidance_rescale": r["guidance_rescale"],
                     **({"guide_scale": r["guide_scale"]} if "guide_scale" in r else {}),
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


def parse_args(argv=None):
    p = parser(NAME, __doc__, model="several", threads=True, device=True, seed=0, out=RESULTS,
               smoke="tiny random pipeline, 1 image per class, no Inception")
    p.add_argument("--settings", default=DEFAULT_SETTINGS)
    p.add_argument("--num-per-class", type=int, default=100)
    p.add_argument("--no-inception", action="store_true")
    p.add_argument("--name", default=NAME, help="result file name")
    p.add_argument("--guide", default=None, help="a class-only model of the same task attached to every --model as its "
                   "autoguidance guide (settings then take :a=WEIGHT)")
    p.add_argument("--base-from", default=None, help="an earlier result JSON of this script whose first row (same "
                   "model, N and seed) becomes this table's first row: its baseline, not measured again")
    p.add_argument("--include", action="append", default=[], help="an earlier result JSON of this script (same N and "
                   "seed) whose rows are put first, e.g. another model's, for one comparison table")
    args = p.parse_args(argv)
    args.settings = parse_settings("ddpm:3:4,dpm++:2:1,dpm++:2:3:i=0.2-0.8:r=0.5" if args.smoke else args.settings)
    args.num_per_class = 1 if args.smoke else args.num_per_class
    args.inception = not (args.smoke or args.no_inception)
    args.model = args.model or [str(SHIPPED_MODEL_DIR)]
    return args


def earlier_rows(args) -> tuple[dict | None, list[dict]]:
    """The --base-from result and the --include rows, checked against this run before any work: a mismatch found after
    an hour of sampling wastes the hour."""
    earlier = None
    if args.base_from:
        earlier = json.loads(Path(args.base_from).read_text())
        first = earlier["rows"][0]
        mismatch = [f"{k} {a!r} vs {b!r}" for k, a, b in (
            ("model", first["model"], repo_relative(args.model[0])), ("num_per_class", earlier["num_per_class"], args.num_per_class),
            ("seed", earlier.get("seed", 0), args.seed)) if a != b]
        if len(args.model) > 1 or mismatch:
            raise SystemExit(f"error: --base-from {args.base_from} does not match this run ({'; '.join(mismatch) or 'several models'})")
    included = []
    for path in args.include:
        other = json.loads(Path(path).read_text())
        if (other["num_per_class"], other.get("seed", 0)) != (args.num_per_class, args.seed):
            raise SystemExit(f"error: --include {path} has N = {other['num_per_class']} per class and seed "
                             f"{other.get('seed', 0)}; this run has {args.num_per_class} and {args.seed}")
        included += [{**row, "from": Path(path).name} for row in other["rows"]]
    return earlier, included


def reproduce(args) -> str:
    """The command that measures these rows again, every default it took named."""
    return shlex.join(["python", "-m", f"benchmarks.{NAME}", *(x for i in args.include for x in ("--include", repo_relative(i))),
                       *(x for m in args.model for x in ("--model", repo_relative(m))),
                       *(["--guide", repo_relative(args.guide)] if args.guide else []),
                       "--settings", ",".join(setting_label(s) for s in args.settings), "--num-per-class",
                       str(args.num_per_class), "--seed", str(args.seed), *(["--no-inception"] if args.no_inception else []),
                       *(["--device", args.device] if args.device else []), "--name", args.name])


def report(args, rows: list[dict], total: int, machine: dict):
    """Writes the JSON and Markdown for the rows measured so far: a run killed after k rows keeps k rows."""
    best = compare_to_base(rows)
    partial = len(rows) < total
    result = {"models": list(dict.fromkeys(r["model"] for r in rows)), "num_per_class": args.num_per_class,
              "seed": args.seed, "rows": rows,
              "fastest_within_10pct": None if best is None else f"{best['model']} {best['setting']}",
              "machine": machine, "smoke": args.smoke, "partial": partial}
    if not args.smoke:  # a smoke run is reproduced by its own command line (emit records it)
        result["command"] = reproduce(args)

    def fid(value, floor):
        return "–" if value is None else f"{value:.2f} ({floor:.2f})"

    table = markdown_table(
        ["model", "setting", "s / image", "speed-up", "judge acc. (real)", "judge-FID (floor)", "Inception FID (floor)"],
        [[r["model"], r["setting"], r["time_per_image_s"], f"{r['speedup_vs_base']:.1f}x",
          f"{r['judge_accuracy']:.3f} ({r['judge_accuracy_floor']:.3f})", fid(r["judge_fid"], r["judge_fid_floor"]),
          fid(r["inception_fid"], r["inception_fid_floor"])] for r in rows])
    markdown = "\n\n".join([
        f"# {args.name}{' (smoke run: tiny random model, not a real measurement)' if args.smoke else ''}"
        f"{f' (partial: {len(rows)} of {total} rows; the run stopped before the rest)' if partial else ''}",
        f"N = {args.num_per_class} per class ({rows[0]['num_images']} images) per row, seed {args.seed}; floors = the same "
        f"metric for {rows[0]['num_images']} real training images vs the test set. Setting = sampler:steps:guidance"
        "[:i=guidance interval][:r=guidance rescale][:a=autoguidance weight]; speed-up and ratios against each model's first row.",
        table,
        f"Fastest setting at ≥ 5x its model's first row with judge-FID and Inception FID within 10 %: "
        f"**{result['fastest_within_10pct'] or 'none'}**.",
    ])
    emit(args.name, result, markdown, args)


def main(argv=None):
    args = parse_args(argv)
    earlier, included = earlier_rows(args)

    from pipeline.models import check_device

    device = check_device(args.device) or "cpu"
    machine = torch_machine(args.threads, device)
    rows = included + ([] if earlier is None else [{**earlier["rows"][0], "from": args.base_from}])
    total = len(rows) + len(args.settings) * len(args.model)
    for model in args.model:
        pipe, source = benchmark_pipeline(model, args.smoke, device=device)
        if args.guide:
            from pipeline.models import with_guide

            guide, guide_source = benchmark_pipeline(args.guide, args.smoke, device=device)
            pipe, source = with_guide(pipe, guide), f"{source} (guide {guide_source})"
        done = list(rows)
        rows += run_rows(pipe, source, args.settings, args.num_per_class, args.seed, args.inception, verbose=not args.smoke,
                         on_row=lambda new, before=done: report(args, before + new, total, machine))


if __name__ == "__main__":
    main()
