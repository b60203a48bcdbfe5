"""A training-free few-step baseline: the shipped model on 4-6 DPM-Solver++ steps at searched timesteps.

For each step count n the timesteps (noisiest first, the first fixed at T - 1) are searched by coordinate descent on
integer timesteps, in the spirit of Align Your Steps (Sabour et al. 2024): the objective is the mean squared distance
of the n-step images to the teacher's (the model's own default sampling) from the same starting noise, on held-out
seeds (--search-seed: image j of class c uses search-seed + 1,000,000·c + j, none of the evaluation's). It starts
from the sampler's even "trailing" spacing and never adds a U-Net pass: a schedule may put no more steps inside the
guidance interval (where a step costs two passes) than the even spacing does. The tuning sees no judge and no
Inception network; each schedule is then judged like every model here (`evaluate` at --num-per-class, seed 0:
judge accuracy, judge-FID and Inception FID beside their floors), beside the teacher and the even spacing, measured in
the same run, with U-Net passes and seconds per image.

  python -m benchmarks.step_schedule --threads 2 --out benchmarks/results      # ~1 h on 2 CPU threads
  python -m benchmarks.step_schedule --smoke

Each candidate's distance is cached in --work-dir, so a killed search resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, SMOKE_TEACHER, benchmark_pipeline, emit, markdown_table, parser, torch_machine

NAME = "step_schedule"
SAMPLER = "dpm++"  # takes a timestep list (UniPC, the default's sampler, does not in diffusers)
SEARCH_SEED = 500_000  # held-out seeds: image j < 500,000 of class c never meets an evaluation seed (seed 0)


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model=True, threads=True, seed=0, out=RESULTS,
               smoke="tiny random model, 2 and 3 steps, 2 search images per class, 1 per class judged, no Inception")
    p.add_argument("--steps", default="4,5,6", help="step counts to search (default 4,5,6)")
    p.add_argument("--search-per-class", type=int, default=10, help="held-out images per class in the objective (default 10)")
    p.add_argument("--search-seed", type=int, default=SEARCH_SEED, help=f"their seed (default {SEARCH_SEED})")
    p.add_argument("--deltas", default="8,4,2,1", help="coordinate-descent moves, largest first (default 8,4,2,1)")
    p.add_argument("--num-per-class", type=int, default=100, help="images per class judged (default 100: N = 1000)")
    p.add_argument("--no-inception", action="store_true", help="judge metrics only")
    p.add_argument("--work-dir", default=str(REPO / "runs" / NAME), help="the search's cache (default runs/step_schedule)")
    args = p.parse_args(argv)
    try:
        args.steps = [int(n) for n in args.steps.split(",")]
        args.deltas = [int(d) for d in args.deltas.split(",")]
    except ValueError:
        raise SystemExit(f"error: --steps and --deltas take comma-separated ints, got {args.steps!r}, {args.deltas!r}") from None
    if any(n < 2 for n in args.steps) or any(d < 1 for d in args.deltas):
        raise SystemExit(f"error: --steps must be >= 2 and --deltas >= 1, got {args.steps}, {args.deltas}")
    if args.smoke:
        args.steps, args.search_per_class, args.num_per_class, args.deltas = [2, 3], 2, 1, [8]
        args.no_inception, args.work_dir = True, str(Path(args.work_dir) / "smoke")
    return args


# ---------------------------------------------------------------------------------------------------- the search
def passes(settings, timesteps, T: int) -> int:
    """U-Net passes per image: one per step, two where guidance applies (the pipeline's own rule)."""
    low, high = settings.interval
    return sum(2 if settings.guided and low <= (t + 1) / T <= high else 1 for t in timesteps)


class Search:
    """Coordinate descent over one step count's timesteps, every distance cached on disk."""

    def __init__(self, pipe, teacher, images, args, T: int, model: str):
        self.pipe, self.teacher, self.images, self.args, self.T = pipe, teacher, images, args, T
        self.cache_path = Path(args.work_dir) / "distances.json"
        self.identity = {"model": model, "teacher": teacher.label(), "sampler": SAMPLER, "search_seed": args.search_seed,
                         "search_per_class": args.search_per_class}
        saved = json.loads(self.cache_path.read_text()) if self.cache_path.is_file() else None
        if saved is not None and saved["identity"] != self.identity:
            raise SystemExit(f"error: {self.cache_path} holds the search of {saved['identity']}, not of "
                             f"{self.identity}; give another --work-dir")
        self.cache = saved["distances"] if saved else {}

    def settings(self, timesteps):
        from dataclasses import replace

        return replace(self.teacher, sampler=SAMPLER, steps=len(timesteps), timesteps=tuple(timesteps))

    def distance(self, timesteps) -> float:
        """Mean squared distance (pixels in [0, 1]) to the teacher's images from the same noise."""
        from pipeline.sampling import generate

        key = "-".join(map(str, timesteps))
        if key not in self.cache:
            made = generate(self.pipe, None, self.args.search_per_class, self.args.search_seed, settings=self.settings(timesteps))
            self.cache[key] = float(((made.images - self.images) ** 2).mean())
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"identity": self.identity, "distances": self.cache}, indent=1))
            tmp.replace(self.cache_path)
        return self.cache[key]

    def run(self, n: int) -> dict:
        from pipeline.pipeline_fashion_ddpm import trailing_timesteps

        start = trailing_timesteps(self.T, n)
        budget = passes(self.teacher, start, self.T)
        best, best_d = list(start), self.distance(start)
        tried = 1
        for delta in self.args.deltas:
            improved = True
            while improved:
                improved = False
                for i in range(1, n):  # the first stays at T - 1: sampling starts from pure noise
                    for move in (-delta, delta):
                        cand = list(best)
                        cand[i] += move
                        if not all(a > b for a, b in zip(cand, cand[1:])) or cand[-1] < 0:
                            continue
                        if passes(self.teacher, cand, self.T) > budget:
                            continue
                        tried += 1
                        d = self.distance(cand)
                        if d < best_d:
                            best, best_d, improved = cand, d, True
        return {"steps": n, "even": start, "even_distance": self.distance(start), "searched": best,
                "searched_distance": best_d, "candidates": tried, "even_passes": budget,
                "searched_passes": passes(self.teacher, best, self.T)}


# ---------------------------------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    from pipeline.evaluation.fidelity import evaluate
    from pipeline.sampling import generate
    from pipeline.settings import SamplingSettings

    pipe, source = benchmark_pipeline(args.model, args.smoke, **SMOKE_TEACHER)
    T = pipe.scheduler.config.num_train_timesteps
    teacher = SamplingSettings.resolve(pipe)
    target = generate(pipe, None, args.search_per_class, args.search_seed, settings=teacher)
    search = Search(pipe, teacher, target.images, args, T, source)
    searches = [search.run(n) for n in args.steps]

    def judged(name, settings, n_passes):
        r = evaluate(pipe, args.num_per_class, seed=args.seed, inception=not args.no_inception, settings=settings,
                     verbose=False)
        return {"name": name, "setting": settings.label(), "passes": n_passes, **{k: r[k] for k in (
            "judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor", "inception_fid",
            "inception_fid_floor", "time_per_image_s")}}

    rows = [judged("teacher (the model's default)", teacher, passes(teacher, _teacher_timesteps(pipe, teacher), T))]
    for s in searches:
        rows.append(judged(f"{s['steps']} steps, even", search.settings(s["even"]), s["even_passes"]))
        rows.append(judged(f"{s['steps']} steps, searched", search.settings(s["searched"]), s["searched_passes"]))
    result = {"model": source, "smoke": args.smoke, "machine": machine, "seed": args.seed, "sampler": SAMPLER,
              "teacher": teacher.label(), "search_seed": args.search_seed, "search_per_class": args.search_per_class,
              "deltas": args.deltas, "num_per_class": args.num_per_class, "searches": searches, "rows": rows}
    emit(NAME, result, to_markdown(result), args)
    return result


def _teacher_timesteps(pipe, settings) -> tuple[int, ...]:
    """The timesteps the teacher's sampler walks (its own scheduler computes them)."""
    from pipeline.pipeline_fashion_ddpm import set_timesteps
    from pipeline.schedulers import make_scheduler, sampler_name

    scheduler = pipe.scheduler if settings.sampler == sampler_name(pipe.scheduler) else make_scheduler(settings.sampler, pipe.scheduler.config)
    set_timesteps(scheduler, settings.steps)
    return tuple(int(t) for t in scheduler.timesteps)


def to_markdown(r: dict) -> str:
    teacher = r["rows"][0]

    def excess(row, key):
        over, base = row[key] - row[key + "_floor"], teacher[key] - teacher[key + "_floor"]
        return f"{row[key]:.3f} (floor {row[key + '_floor']:.3f}; excess {over / base:.2f}× the teacher's)" if base > 0 else f"{row[key]:.3f}"

    rows = [[row["name"], f"`{row['setting']}`", row["passes"], f"{row['judge_accuracy']:.3f} ({row['judge_accuracy_floor']:.3f})",
             excess(row, "judge_fid"),
             "–" if row["inception_fid"] is None else excess(row, "inception_fid"),
             f"{row['time_per_image_s']:.3f}", f"{teacher['time_per_image_s'] / row['time_per_image_s']:.1f}×"]
            for row in r["rows"]]
    searches = [[s["steps"], "-".join(map(str, s["even"])), f"{s['even_distance']:.5f}", "-".join(map(str, s["searched"])),
                 f"{s['searched_distance']:.5f}", s["candidates"]] for s in r["searches"]]
    return "\n\n".join([
        f"# {NAME}: `{r['model']}` on few {r['sampler']} steps{' (smoke run: not a measurement)' if r['smoke'] else ''}",
        f"Teacher: the model's default sampling, `{r['teacher']}`. Each schedule searched by coordinate descent (moves "
        f"{', '.join(map(str, r['deltas']))}) on the mean squared distance to the teacher's images from the same noise, "
        f"{r['search_per_class']} held-out images per class (seed {r['search_seed']:,}); no added U-Net pass.",
        markdown_table(["steps", "even timesteps", "distance", "searched timesteps", "distance", "candidates"], searches),
        f"Judged at N = {10 * r['num_per_class']:,} (seed {r['seed']}; metrics the search never saw), each beside its "
        "floor and, for the FIDs, the excess over the floor as a multiple of the teacher's; seconds per image from the "
        "evaluation's own sampling, in this run:",
        markdown_table(["sampling", "setting", "U-Net passes / image", "judge accuracy (floor)", "judge-FID",
                        "Inception FID", "s / image", "speed-up"], rows),
    ] + ([f"Timing: {r['timing_note']}."] if r.get("timing_note") else []))


if __name__ == "__main__":
    main()
