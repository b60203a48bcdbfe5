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

from benchmarks.harness import REPO, RESULTS, SMOKE_MODEL, SMOKE_TEACHER, emit, markdown_table, parser, repo_relative, smoke_pipeline, torch_machine

NAME = "few_passes"
TEACHER = "pretrained/fashion-ddpm-cpu"
TIMING_SEED = 900_000  # timing images: seeds no judged image uses
QUALITY = ("judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor", "inception_fid",
           "inception_fid_floor")
# the targets: (passes, max FID excess vs the teacher's, min speed-up)
TARGETS = {4: (1.2, 4.0), 2: (1.5, 7.0)}


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, seed=0, out=RESULTS,
               smoke="tiny random teacher and untrained student, 1 image per class (DDPM-100: 2), no Inception")
    p.add_argument("--teacher", default=TEACHER, help=f"the teacher's folder (default {TEACHER})")
    p.add_argument("--student", action="append", default=None,
                   help="a distilled student's folder; repeat for several (their rows then carry the folder's name; "
                        "the first is the one --student-evaluation evaluates); none: teacher arms only")
    p.add_argument("--schedules", default=None, help="a step_schedule result of the same teacher: its searched rows join")
    p.add_argument("--no-ddpm100", action="store_true", help="leave out DDPM-100 (~1 s per image on the CPU model)")
    p.add_argument("--num-per-class", type=int, default=100, help="images per class judged (default 100: N = 1000)")
    p.add_argument("--no-inception", action="store_true", help="judge metrics only")
    p.add_argument("--ddpm100-per-class", type=int, default=100,
                   help="images per class of the DDPM-100 row (default 100); another N puts it in a table of its own "
                        "beside the teacher judged at that N (DDPM-100 costs ~170 passes per image)")
    p.add_argument("--student-evaluation", default=None, metavar="DIR",
                   help="also write the student's default arm's full evaluation (metrics.json, samples.png) here, as "
                        "`fashion-ddpm evaluate --out` does (its model card's metrics)")
    p.add_argument("--work-dir", default=str(REPO / "runs" / NAME),
                   help="each judged arm's metrics are cached here, so a killed run resumes (default runs/few_passes)")
    p.add_argument("--timing-rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    p.add_argument("--timing-images", type=int, default=20, help="images per arm per round, 2 per class (default 20)")
    args = p.parse_args(argv)
    if args.smoke:
        args.num_per_class, args.no_inception, args.timing_rounds, args.timing_images = 1, True, 1, 10
        args.ddpm100_per_class, args.work_dir = 2, str(Path(args.work_dir) / "smoke")
    for name in ("teacher", "student", "schedules"):
        value = getattr(args, name)
        for one in value if isinstance(value, list) else [value]:
            if one is not None and not args.smoke and not Path(one).exists():
                raise SystemExit(f"error: --{name} {one}: no such file or folder")
    return args


def arms(teacher, students: dict, distillation: dict | None, args) -> list[tuple[str, object, object, dict | None]]:
    """(name, pipeline, settings, its row if judged in another run) of every arm, the teacher's default first;
    `students` is {label: pipeline} (label None: a lone student's rows are "student, n steps"), `distillation` the
    first student's distill.json (its trajectories' sampler becomes an arm)."""
    from dataclasses import replace

    from pipeline.settings import SamplingSettings

    default = SamplingSettings.resolve(teacher)
    out = [("teacher (its default)", teacher, default, None)]
    if not args.no_ddpm100:
        if args.ddpm100_per_class != args.num_per_class:  # its own comparison at its N, beside the teacher at that N
            out.append(("teacher (its default)", teacher, default, {"num_per_class": args.ddpm100_per_class}))
        out.append(("DDPM-100", teacher, replace(default, sampler="ddpm", steps=100, timesteps=None),
                    {"num_per_class": args.ddpm100_per_class}))
    if distillation is not None:
        grid = distillation["config"]["grid_steps"]
        out.append((f"the student's teacher sampler (dpm++ {grid})", teacher,
                    replace(default, sampler="dpm++", steps=grid, timesteps=None), None))
    if args.schedules:
        result = json.loads(Path(args.schedules).read_text())
        if Path(result["model"]).resolve() != Path(args.teacher).resolve():
            raise SystemExit(f"error: --schedules {args.schedules} searched {result['model']}, not {args.teacher}")
        for row in result["rows"]:  # judged in the search's run; used here only if its teacher row equals this one's
            if row["name"].endswith("searched"):
                out.append((f"{row['name']} schedule (training-free)", teacher,
                            SamplingSettings.parse(row["setting"], teacher), {**row, "teacher": result["rows"][0]}))
    for label, student in students.items():
        for n in sorted((int(k) for k in student.condition_encoder.config.step_schedules), reverse=True):
            own = n == student.config.default_num_inference_steps  # its default: the settings its card names
            settings = SamplingSettings.resolve(student) if own else SamplingSettings.resolve(student, steps=n)
            out.append((f"student{f' ({label})' if label else ''}, {n} step{'s' * (n > 1)}", student, settings, None))
    return out


def same_images(a: dict, b: dict) -> bool:
    """Whether two teacher rows scored the same images (same model, settings, seeds: the same metrics, to float noise)."""
    return a["setting"] == b["setting"] and all(
        a[k] is not None and b[k] is not None and abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(b[k]))
        for k in ("judge_accuracy", "judge_fid", "inception_fid"))


class Cache:
    """Each judged arm's metrics on disk, keyed by the model's weights (`model_fingerprint`, not its folder: a student
    shipped under the same folder name must not get the old weights' metrics, and a student copied into another
    folder keeps its own), settings, N, seed and Inception."""

    def __init__(self, folder: Path, args):
        self.path, self.args = folder / ("smoke.json" if args.smoke else "judged.json"), args
        self.rows = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def key(self, fingerprint: str, settings, n: int) -> str:
        a = self.args
        return f"{fingerprint[:12]}|{settings.label()}|n={n}|seed={a.seed}|inception={not a.no_inception}"

    def get(self, fingerprint: str, settings, n: int):
        return None if self.args.smoke else self.rows.get(self.key(fingerprint, settings, n))

    def put(self, fingerprint: str, settings, n: int, row: dict):
        self.rows[self.key(fingerprint, settings, n)] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.rows, indent=1))
        tmp.replace(self.path)


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
        for k, (_, pipe, settings, _) in enumerate(all_arms):
            start = time.perf_counter()
            made = generate(pipe, None, per_class, TIMING_SEED + 1000 * (r + 1), settings=settings)
            seconds[k].append((time.perf_counter() - start) / len(made))
    return [statistics.median(s) for s in seconds]


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.models import load_pipeline
    from pipeline.settings import SamplingSettings
    from pipeline.synthesis.plan import model_fingerprint

    if args.smoke:
        from pipeline.training.distill import build_student, student_pipeline, validate

        teacher, teacher_name, folders = smoke_pipeline(**SMOKE_TEACHER), SMOKE_MODEL, ["untrained (smoke)"]
        pipes = [student_pipeline(teacher, validate({}), build_student(teacher, validate({})))]
        records = [None]  # an untrained student: no distill.json, so no trajectory sampler's row
    else:
        teacher, teacher_name = load_pipeline(args.teacher), repo_relative(args.teacher)
        folders = [repo_relative(f) for f in args.student or []]
        pipes = [load_pipeline(f) for f in args.student or []]
        records = [json.loads((Path(f) / "distill.json").read_text()) for f in args.student or []]
    labels = [Path(f).name if len(folders) > 1 else None for f in folders]
    student = pipes[0] if pipes else None  # the first: the one --student-evaluation evaluates
    names = {id(teacher): teacher_name} | {id(pipe): folder for pipe, folder in zip(pipes, folders)}
    distillation = records[0] if records else None
    all_arms = arms(teacher, dict(zip(labels, pipes)), distillation, args)
    seconds = timed(all_arms, args)
    cache = Cache(Path(args.work_dir), args)
    fingerprints = {id(pipe): model_fingerprint(pipe) for pipe in [teacher, *pipes]}
    rows = []
    for (name, pipe, settings, earlier), s in zip(all_arms, seconds):
        model = names[id(pipe)]
        n = (earlier or {}).get("num_per_class", args.num_per_class)
        r, judged_in = None, "this run"
        if earlier is not None and "teacher" in earlier and same_images(earlier["teacher"], rows[0]) and n == 100:
            r, judged_in = earlier, args.schedules  # the same teacher images there: its rows stand beside these
        full = pipe is student and args.student_evaluation and settings == SamplingSettings.resolve(student)
        if r is None:
            r = cache.get(fingerprints[id(pipe)], settings, n) if not full else None
        if r is None:
            r = evaluate(pipe, n, seed=args.seed, inception=not args.no_inception, settings=settings,
                         verbose=False, out_dir=args.student_evaluation if full else None,
                         command=args.command_line if full else None, model_name=model if full else None)
            r = {k: r[k] for k in QUALITY}
            cache.put(fingerprints[id(pipe)], settings, n, r)
        rows.append({"name": name, "model": model, "setting": settings.label(), "describe": settings.describe(),
                     "num_per_class": n, "passes": counted_passes(pipe, settings), "seconds_per_image": s,
                     "judged_in": judged_in, **{k: r[k] for k in QUALITY}})
    teacher_training = None
    if not args.smoke and (Path(args.teacher) / "metrics.jsonl").is_file():  # the teacher's own run, for the fraction
        from pipeline.plots import read_metrics

        last = read_metrics(Path(args.teacher) / "metrics.jsonl")[-1]
        batch = json.loads((Path(args.teacher) / "train_config.json").read_text())["train_batch_size"]
        teacher_training = {"updates": last["step"], "images": last["step"] * batch, "wall_time_s": last["wall_time_s"]}
    result = {"teacher": teacher_name, "student": folders[0] if folders else None, "smoke": args.smoke, "machine": machine,
              "seed": args.seed, "num_per_class": args.num_per_class, "timing_rounds": args.timing_rounds,
              "timing_images": args.timing_images, "schedules": args.schedules and repo_relative(args.schedules),
              "distillation": distillation and distillation["stats"], "teacher_training": teacher_training,
              "students": [{"student": folder, "label": label, "method": (record or {}).get("config", {}).get("method", "trajectory"),
                            "distillation": record and record["stats"]}
                           for folder, label, record in zip(folders, labels, records)],
              "rows": rows}
    emit(NAME, result, to_markdown(result), args)
    return result


def teacher_at(r: dict, row: dict) -> dict:
    """The teacher's row judged at the same N as `row`."""
    n = row.get("num_per_class", r["num_per_class"])
    return next(t for t in r["rows"] if t["name"].startswith("teacher") and t.get("num_per_class", r["num_per_class"]) == n)


def excess_ratio(row: dict, teacher: dict, key: str) -> float | None:
    """The excess of `key` over its floor, in multiples of the teacher's excess."""
    if row[key] is None:
        return None
    base = teacher[key] - teacher[key + "_floor"]
    return (row[key] - row[key + "_floor"]) / base if base > 0 else None


def verdicts(r: dict) -> list[str]:
    """Each student row with a target, against it: FID excesses, judge accuracy and speed-up."""
    lines = []
    for row in r["rows"]:
        passes = round(row["passes"])
        if not row["name"].startswith("student") or passes not in TARGETS:
            continue
        teacher = teacher_at(r, row)
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


def stages_text(d: dict) -> str:
    """The training's stages when a run trained on from an earlier student (their sum is the cost above)."""
    stages = d.get("stages") or []
    if len(stages) < 2:
        return ""
    return (f" The updates ran in {len(stages)} stages, each from the one before: "
            + "; ".join(f"{s['updates']:,} at learning rate {s['learning_rate']:g} ({s['wall_time_s'] / 60:.0f} min, "
                        f"final loss {s['final_loss']:.4f})" for s in stages) + ".")


def fraction_text(d: dict, t: dict | None) -> str:
    """The distillation's cost as a fraction of the teacher's training (its images and its wall time)."""
    if not t:
        return ""
    return (f" The teacher's training: {t['updates']:,} updates, {t['images']:,} images, {t['wall_time_s'] / 60:.0f} min; "
            f"the student's {d['pairs_seen']:,} pairs are {d['pairs_seen'] / t['images']:.0%} of its images, and both "
            f"phases took {(d['wall_time_s'] + d['trajectory_time_s']) / t['wall_time_s']:.0%} of its wall time (which "
            "includes updates run at 1 thread beside other jobs, as the teacher's card says).")


def student_rows(r: dict, label: str | None = None) -> tuple[list[dict], dict | None]:
    """A result's rows of one student (`label`: its folder's name where the run had several; None: the first or only
    one) and that student's distillation record."""
    students = r.get("students") or [{"label": None, "distillation": r.get("distillation")}]
    student = next(s for s in students if s["label"] == label) if label else students[0]
    prefix = f"student ({student['label']})," if student["label"] else "student,"
    return [row for row in r["rows"] if row["name"].startswith(prefix)], student["distillation"]


def method_table(entries: list[tuple[str, dict, str | None]]) -> str:
    """Students of several runs side by side, each row against its own run's teacher: [(what, result, label)]. The
    runs' teacher rows must have scored the same images (the same model, settings and seeds: checked)."""
    reference = entries[0][1]["rows"][0]
    cells = []
    for what, r, label in entries:
        if not same_images(r["rows"][0], reference):
            raise ValueError(f"{what}: its run's teacher row is not the first run's (other images or another teacher)")
        rows, d = student_rows(r, label)
        cost = f"{d['updates']:,} updates, {d['pairs_seen']:,} pairs, {d['wall_time_s'] / 60:.0f} min" if d else "–"
        for row in rows:
            t = teacher_at(r, row)
            ratios = [excess_ratio(row, t, k) for k in ("judge_fid", "inception_fid")]
            cells.append([what, f"`{row['setting']}`", f"{row['passes']:g}", f"{row['judge_accuracy']:.3f}",
                          *("–" if x is None else f"{x:.2f}×" for x in ratios),
                          f"{t['seconds_per_image'] / row['seconds_per_image']:.1f}×", cost])
    return markdown_table(["student", "setting", "U-Net passes / image", "judge accuracy", "judge-FID excess", "Inception FID excess",
                           "speed-up", "training"], cells)


def quality_table(r: dict, rows: list[dict]) -> str:
    def fid(row, key):
        if row[key] is None:
            return "–"
        ratio = excess_ratio(row, teacher_at(r, row), key)
        return f"{row[key]:.3f} (floor {row[key + '_floor']:.3f}" + (f"; excess {ratio:.2f}×)" if ratio is not None else ")")

    cells = [[row["name"] + ("" if row.get("judged_in", "this run") == "this run" else " †"), f"`{row['setting']}`",
              f"{row['passes']:g}", f"{row['judge_accuracy']:.3f} ({row['judge_accuracy_floor']:.3f})",
              fid(row, "judge_fid"), fid(row, "inception_fid"), f"{row['seconds_per_image']:.4f}",
              f"{teacher_at(r, row)['seconds_per_image'] / row['seconds_per_image']:.1f}×"] for row in rows]
    return markdown_table(["sampling", "setting", "U-Net passes / image", "judge accuracy (floor)", "judge-FID",
                           "Inception FID", "s / image", "speed-up"], cells)


def to_markdown(r: dict) -> str:
    main_n = r["num_per_class"]
    main = [row for row in r["rows"] if row.get("num_per_class", main_n) == main_n]
    others = sorted({row["num_per_class"] for row in r["rows"]} - {main_n})
    # earlier results name one student: its distillation record
    students = r.get("students") or ([{"label": None, "method": "trajectory", "distillation": r["distillation"]}]
                                     if r.get("distillation") else [])
    parts = [
        f"# {NAME}: `{r['teacher']}` and its student against U-Net passes"
        + (" (smoke run: not a measurement)" if r["smoke"] else ""),
        f"Judged at N = {10 * main_n:,} (seed {r['seed']}), each metric beside its floor; the FIDs' excess "
        "over the floor is in multiples of the teacher's (first row). Passes per image are counted; seconds per image "
        f"are medians of {r['timing_rounds']} interleaved rounds of {r['timing_images']} images per arm, in this run."
        + (f" Student: `{r['student']}`." if r["student"] else ""),
        quality_table(r, main),
    ]
    if any(row.get("judged_in", "this run") != "this run" for row in r["rows"]):
        parts.append(f"† Judged in the schedule search's run (`{r['schedules']}`), whose teacher row scored the same "
                     "images with the same metrics as this run's (checked); timed in this run.")
    for n in others:
        parts += [f"At N = {10 * n:,} (the same seeds; floors at that N), timed in the same rounds:",
                  quality_table(r, [row for row in r["rows"] if row.get("num_per_class") == n])]
    lines = verdicts(r)
    if lines:
        parts.append("\n".join(f"- {line}" for line in lines))
    for student in students:
        d = student["distillation"]
        if not d:
            continue
        whose = f" of `{student['label']}` ({student['method']} distillation)" if student["label"] else ""
        parts.append(f"Distillation cost{whose}: {d['trajectories']:,} teacher trajectories in "
                     f"{d['trajectory_time_s'] / 60:.0f} min, then {d['updates']:,} updates ({d['pairs_seen']:,} training "
                     f"pairs) in {d['wall_time_s'] / 60:.0f} min, on {d['hardware']}." + stages_text(d)
                     + fraction_text(d, r.get("teacher_training")))
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
