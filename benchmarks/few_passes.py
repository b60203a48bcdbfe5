"""Quality against U-Net passes: a teacher at its default, DDPM-100, its trajectories' sampler, a searched few-step
schedule and its distilled student at 4, 2 and 1 steps, all judged in one run.

Every arm is judged like every model here (`evaluate` at --num-per-class, seed 0: judge accuracy, judge-FID and
Inception FID beside their floors); the FIDs are also given as their excess over the floor in multiples of the
teacher's excess (the issue's measure: at N = 1,000 the floor is most of an FID). U-Net passes per image are counted
(a hook on the U-Net adds up the images each forward pass carries), not computed. Seconds per image come from
interleaved rounds (every arm once per round, --timing-images images each, median over --timing-rounds), so a change
in the machine's load reaches every arm alike.

  python -m benchmarks.few_passes --threads 2 --student pretrained/fashion-ddpm-cpu-fast \\
      --schedules benchmarks/results/step_schedule.json --out benchmarks/results
  python -m benchmarks.few_passes --smoke
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from benchmarks.harness import RESULTS, TINY_UNET, emit, markdown_table, parser, repo_relative, torch_machine

NAME = "few_passes"
TEACHER = "pretrained/fashion-ddpm-cpu"
TIMING_SEED = 900_000  # timing images: seeds no judged image uses
# the targets: (passes, max FID excess vs the teacher's, min speed-up)
TARGETS = {4: (1.2, 4.0), 2: (1.5, 7.0)}


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, seed=0, out=RESULTS,
               smoke="tiny random teacher and untrained student, 1 image per class, no Inception, no DDPM-100")
    p.add_argument("--teacher", default=TEACHER, help=f"the teacher's folder (default {TEACHER})")
    p.add_argument("--student", default=None, help="its distilled student's folder (none: teacher arms only)")
    p.add_argument("--schedules", default=None, help="a step_schedule result of the same teacher: its searched rows join")
    p.add_argument("--no-ddpm100", action="store_true", help="leave out DDPM-100 (~1 s per image on the CPU model)")
    p.add_argument("--num-per-class", type=int, default=100, help="images per class judged (default 100: N = 1000)")
    p.add_argument("--no-inception", action="store_true", help="judge metrics only")
    p.add_argument("--timing-rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    p.add_argument("--timing-images", type=int, default=20, help="images per arm per round, 2 per class (default 20)")
    args = p.parse_args(argv)
    if args.smoke:
        args.num_per_class, args.no_inception, args.no_ddpm100, args.timing_rounds, args.timing_images = 1, True, True, 1, 10
    for name in ("teacher", "student", "schedules"):
        value = getattr(args, name)
        if value is not None and not args.smoke and not Path(value).exists():
            raise SystemExit(f"error: --{name} {value}: no such file or folder")
    return args


def arms(teacher, student, args) -> list[tuple[str, object, object]]:
    """(name, pipeline, settings) of every arm, the teacher's default first."""
    from dataclasses import replace

    from pipeline.settings import SamplingSettings

    default = SamplingSettings.resolve(teacher)
    out = [("teacher (its default)", teacher, default)]
    if not args.no_ddpm100:
        out.append(("DDPM-100", teacher, replace(default, sampler="ddpm", steps=100, timesteps=None)))
    if student is not None and args.student:  # (a smoke run's student has no distill.json)
        grid = json.loads((Path(args.student) / "distill.json").read_text())["config"]["grid_steps"]
        out.append((f"the student's teacher sampler (dpm++ {grid})", teacher,
                    replace(default, sampler="dpm++", steps=grid, timesteps=None)))
    if args.schedules:
        result = json.loads(Path(args.schedules).read_text())
        if Path(result["model"]).resolve() != Path(args.teacher).resolve():
            raise SystemExit(f"error: --schedules {args.schedules} searched {result['model']}, not {args.teacher}")
        for row in result["rows"]:
            if row["name"].endswith("searched"):
                out.append((f"{row['name']} schedule (training-free)", teacher, SamplingSettings.parse(row["setting"], teacher)))
    if student is not None:
        for n in sorted((int(k) for k in student.condition_encoder.config.step_schedules), reverse=True):
            out.append((f"student, {n} step{'s' * (n > 1)}", student, SamplingSettings.resolve(student, steps=n)))
    return out


def counted_passes(pipe, settings) -> float:
    """U-Net passes per image, counted over one image per class."""
    from pipeline.sampling import generate

    carried = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, inputs: carried.append(inputs[0].shape[0]))
    try:
        made = generate(pipe, None, 1, TIMING_SEED, settings=settings)
    finally:
        hook.remove()
    return sum(carried) / len(made)


def timed(all_arms, args) -> list[float]:
    """Median seconds per image of each arm over interleaved rounds."""
    from pipeline.sampling import generate

    per_class = max(1, args.timing_images // 10)
    seconds = [[] for _ in all_arms]
    for r in range(args.timing_rounds):
        for k, (_, pipe, settings) in enumerate(all_arms):
            start = time.perf_counter()
            made = generate(pipe, None, per_class, TIMING_SEED + 1000 * (r + 1), settings=settings)
            seconds[k].append((time.perf_counter() - start) / len(made))
    return [statistics.median(s) for s in seconds]


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.models import load_pipeline

    if args.smoke:
        import torch

        from pipeline import FashionDDPMPipeline
        from pipeline.schedulers import use_sampler
        from pipeline.training.distill import build_student, student_pipeline, validate

        torch.manual_seed(0)
        teacher = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET)
        use_sampler(teacher, "unipc").register_to_config(default_guidance_interval=[0.17, 0.88],
                                                         default_num_inference_steps=4)
        teacher.set_progress_bar_config(disable=True)
        student = student_pipeline(teacher, validate({}), build_student(teacher, validate({})))
        args.student = None  # no distill.json: the trajectory sampler's row is left out
        names = {"teacher": "random init (smoke)", "student": "untrained (smoke)"}
    else:
        teacher = load_pipeline(args.teacher)
        student = load_pipeline(args.student) if args.student else None
        names = {"teacher": repo_relative(args.teacher), "student": args.student and repo_relative(args.student)}
    all_arms = arms(teacher, student, args)
    seconds = timed(all_arms, args)
    rows = []
    for (name, pipe, settings), s in zip(all_arms, seconds):
        r = evaluate(pipe, args.num_per_class, seed=args.seed, inception=not args.no_inception, settings=settings,
                     verbose=False)
        rows.append({"name": name, "model": names["student" if pipe is student else "teacher"],
                     "setting": settings.label(), "describe": settings.describe(), "passes": counted_passes(pipe, settings),
                     "seconds_per_image": s, **{k: r[k] for k in (
                         "judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor", "inception_fid",
                         "inception_fid_floor")}})
    student_card = json.loads((Path(args.student) / "distill.json").read_text()) if args.student else None
    result = {"teacher": names["teacher"], "student": names["student"], "smoke": args.smoke, "machine": machine,
              "seed": args.seed, "num_per_class": args.num_per_class, "timing_rounds": args.timing_rounds,
              "timing_images": args.timing_images, "schedules": args.schedules and repo_relative(args.schedules),
              "distillation": student_card and student_card["stats"], "rows": rows}
    emit(NAME, result, to_markdown(result), args)
    return result


def excess_ratio(row: dict, teacher: dict, key: str) -> float | None:
    """The excess of `key` over its floor, in multiples of the teacher's excess."""
    if row[key] is None:
        return None
    base = teacher[key] - teacher[key + "_floor"]
    return (row[key] - row[key + "_floor"]) / base if base > 0 else None


def verdicts(r: dict) -> list[str]:
    """Each student row with a target, against it: FID excesses, judge accuracy and speed-up."""
    teacher = r["rows"][0]
    lines = []
    for row in r["rows"]:
        passes = round(row["passes"])
        if not row["name"].startswith("student") or passes not in TARGETS:
            continue
        max_excess, min_speedup = TARGETS[passes]
        ratios = [excess_ratio(row, teacher, k) for k in ("judge_fid", "inception_fid")]
        speedup = teacher["seconds_per_image"] / row["seconds_per_image"]
        checks = [all(x is not None and x <= max_excess for x in ratios), row["judge_accuracy"] >= 0.95,
                  speedup >= min_speedup]
        shown = ", ".join("–" if x is None else f"{x:.2f}×" for x in ratios)
        lines.append(f"{row['name']} ({passes} passes): FID excesses {shown} the teacher's (target ≤ {max_excess}×), "
                     f"judge accuracy {row['judge_accuracy']:.3f} (target ≥ 0.95), {speedup:.1f}× faster (target ≥ "
                     f"{min_speedup:g}×): {'meets' if all(checks) else 'misses'} its target.")
    return lines


def to_markdown(r: dict) -> str:
    teacher = r["rows"][0]

    def fid(row, key):
        if row[key] is None:
            return "–"
        ratio = excess_ratio(row, teacher, key)
        return f"{row[key]:.3f} (floor {row[key + '_floor']:.3f}" + (f"; excess {ratio:.2f}×)" if ratio is not None else ")")

    rows = [[row["name"], f"`{row['setting']}`", f"{row['passes']:g}",
             f"{row['judge_accuracy']:.3f} ({row['judge_accuracy_floor']:.3f})", fid(row, "judge_fid"),
             fid(row, "inception_fid"), f"{row['seconds_per_image']:.4f}",
             f"{teacher['seconds_per_image'] / row['seconds_per_image']:.1f}×"] for row in r["rows"]]
    d = r.get("distillation")
    parts = [
        f"# {NAME}: `{r['teacher']}` and its student against U-Net passes"
        + (" (smoke run: not a measurement)" if r["smoke"] else ""),
        f"Judged at N = {10 * r['num_per_class']:,} (seed {r['seed']}), each metric beside its floor; the FIDs' excess "
        "over the floor is in multiples of the teacher's (first row). Passes per image are counted; seconds per image "
        f"are medians of {r['timing_rounds']} interleaved rounds of {r['timing_images']} images per arm, in this run."
        + (f" Student: `{r['student']}`." if r["student"] else ""),
        markdown_table(["sampling", "setting", "U-Net passes / image", "judge accuracy (floor)", "judge-FID",
                        "Inception FID", "s / image", "speed-up"], rows),
    ]
    lines = verdicts(r)
    if lines:
        parts.append("\n".join(f"- {line}" for line in lines))
    if d:
        parts.append(f"Distillation cost: {d['trajectories']:,} teacher trajectories in {d['trajectory_time_s'] / 60:.0f} "
                     f"min, then {d['updates']:,} updates ({d['pairs_seen']:,} training pairs) in "
                     f"{d['wall_time_s'] / 60:.0f} min, on {d['hardware']}.")
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
