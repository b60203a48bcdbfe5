"""A distilled student's loss on teacher trajectories it trained on against trajectories it never saw: how much of what
it learnt carries over to new starting noise (the gap says whether more trajectories or more updates would help).

Both sets come from one trajectory folder of the same teacher and seed rule: the first --seen-per-class images per
class and w are the ones the student trained on, the rest are new. Every pair of the student's method (each step of
each schedule, or each link of a consistency chain) is scored on --sample trajectories of each set, drawn with --seed.

  python -m benchmarks.distill_holdout --student runs/distill-cpu-stage2 --config configs/distill_stages.yaml \\
      trajectories_per_class=320 --seen-per-class 160 --threads 2 --out benchmarks/results
  python -m benchmarks.distill_holdout --smoke
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from benchmarks.harness import SMOKE_TEACHER, emit, markdown_table, parser, repo_relative, smoke_pipeline, torch_machine

NAME = "distill_holdout"


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, seed=0, out=True,
               smoke="a tiny random teacher, 2 trajectories per class and w, an untrained student")
    p.add_argument("--student", help="the distilled student's folder (its distill.json names its teacher and method)")
    p.add_argument("--config", help="a distill config whose trajectories_dir holds the seen and the new trajectories")
    p.add_argument("overrides", nargs="*", help="key=value overrides of --config (YAML values), e.g. trajectories_per_class=320")
    p.add_argument("--seen-per-class", type=int, help="the first this many per class and w are the seen ones")
    p.add_argument("--sample", type=int, default=1000, help="trajectories scored from each set (default 1000)")
    args = p.parse_args(argv)
    if not args.smoke:
        missing = [flag for flag in ("student", "config", "seen_per_class") if getattr(args, flag) is None]
        if missing:
            p.error(f"give {', '.join('--' + m.replace('_', '-') for m in missing)} (or --smoke)")
        for flag in ("student", "config"):
            if not Path(getattr(args, flag)).exists():
                p.error(f"--{flag} {getattr(args, flag)}: no such file or folder")
    if args.sample < 1 or (args.seen_per_class is not None and args.seen_per_class < 1):
        p.error("--sample and --seen-per-class must be >= 1")
    return args


def smoke_setup(work: Path):
    """(student pipeline, config, seen per class): a tiny teacher's trajectories, 1 seen and 1 new per class and w."""
    from pipeline.training.distill import build_student, make_trajectories, student_pipeline, validate

    teacher = smoke_pipeline(**SMOKE_TEACHER)
    teacher.save_pretrained(work / "teacher")
    config = validate({"teacher": str(work / "teacher"), "output_dir": str(work / "run"), "trajectories_per_class": 2,
                       "shard_per_class": 1, "guidance_values": [1, 2]})
    make_trajectories(teacher, config)
    return student_pipeline(teacher, config, build_student(teacher, config)), config, 1


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    import torch

    from pipeline.models import load_pipeline
    from pipeline.training.distill import PairSampler, load_config, load_trajectories, pair_losses
    from pipeline.training.style import StyleDenoiser

    if args.smoke:
        student, config, seen_per_class = smoke_setup(Path(tempfile.mkdtemp(prefix="holdout-")))
        method, student_name = "trajectory", "untrained (smoke)"
    else:
        student, config, seen_per_class = load_pipeline(args.student), load_config(args.config, args.overrides), args.seen_per_class
        record = json.loads((Path(args.student) / "distill.json").read_text())["config"]
        method, student_name = record.get("method", "trajectory"), repo_relative(args.student)
        if record["teacher"] != config.teacher or seen_per_class >= config.trajectories_per_class:
            raise SystemExit(f"error: --config {args.config} must be of the student's teacher {record['teacher']!r} with "
                             f"more than --seen-per-class {seen_per_class} trajectories per class")
    config = dataclasses.replace(config, method=method, step_weights=None)
    data = load_trajectories(config)
    index = (data["seeds"] - config.trajectory_seed) % 1_000_000  # image j of its class: the seed rule
    model = StyleDenoiser(student.unet, student.condition_encoder).eval()
    alphas = student.scheduler.alphas_cumprod
    pairs = PairSampler(config, len(alphas), data)
    generator = torch.Generator().manual_seed(args.seed)
    sets = {"seen": (index < seen_per_class).nonzero().flatten(), "new": (index >= seen_per_class).nonzero().flatten()}
    losses = {}
    for name, members in sets.items():
        rows = members[torch.randperm(len(members), generator=generator)[:args.sample]]
        for group, group_pairs in zip(pairs.names, pairs.pairs):
            scores = []
            for pair in group_pairs:
                for chunk in rows.split(250):
                    with torch.no_grad():
                        picks = torch.tensor([[*pair, 0]] * len(chunk))
                        scores.append(pair_losses(model, model, data, chunk, picks, method, alphas))
            losses.setdefault(group, {})[name] = float(torch.cat(scores).mean())  # every step of the group alike
    result = {"student": student_name, "method": method, "teacher": repo_relative(config.teacher),
              "trajectories": {"seen": len(sets["seen"]), "new": len(sets["new"]), "scored_per_set": min(
                  args.sample, len(sets["seen"]), len(sets["new"]))},
              "seen_per_class": seen_per_class, "losses": losses, "smoke": args.smoke, "machine": machine}
    emit(NAME, result, to_markdown(result), args)
    return result


def to_markdown(r: dict) -> str:
    rows = [[group, f"{v['seen']:.5f}", f"{v['new']:.5f}", f"{v['new'] / v['seen']:.2f}×"] for group, v in r["losses"].items()]
    return (f"## {NAME}: `{r['student']}` on trajectories it trained on and new ones"
            + (" (smoke run: not a measurement)" if r["smoke"] else "") + "\n\n"
            f"Mean velocity MSE per pair ({r['method']} targets) over {r['trajectories']['scored_per_set']:,} "
            f"trajectories of each set; seen: the first {r['seen_per_class']} per class and w.\n\n"
            + markdown_table(["pairs", "seen", "new", "new / seen"], rows))


if __name__ == "__main__":
    main()
