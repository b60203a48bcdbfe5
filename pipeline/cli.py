"""The `fashion-ddpm` command line: generate, evaluate, evaluate-clip, visualize."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "pretrained" / "fashion-ddpm-cpu"


def load_pipeline(model: str | None, sampler: str | None = None):
    """Loads a saved pipeline folder or Hub id (the shipped default model when `model` is None)."""
    from .pipeline_fashion_ddpm import FashionDDPMPipeline
    from .schedulers import use_sampler

    model = str(model or DEFAULT_MODEL)
    if os.path.exists(model) and not os.path.isfile(os.path.join(model, "model_index.json")):
        raise SystemExit(f"error: {model} is not a saved pipeline folder (no model_index.json in it)")
    if not os.path.exists(model) and (model == str(DEFAULT_MODEL) or model.startswith((".", "/"))):
        raise SystemExit(f"error: model folder {model} does not exist; pass --model DIR or a Hub id user/name")
    pipe = FashionDDPMPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    return use_sampler(pipe, sampler) if sampler else pipe


def add_sampling_args(parser: argparse.ArgumentParser):
    from .schedulers import SAMPLERS

    parser.add_argument("--model", help=f"pipeline folder or Hub id (default: the shipped {DEFAULT_MODEL.name})")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the pipeline's)")
    parser.add_argument("--scheduler", choices=sorted(SAMPLERS), default=None, help="sampler (default: the saved 100-step DDPM)")
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: all training steps)")
    parser.add_argument("--seed", type=int, default=0)


def sampling_kwargs(args) -> dict:
    kwargs = {"num_inference_steps": args.steps}
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    return kwargs


def cmd_generate(args):
    import torch

    from .grid import labelled_grid

    if args.num < 1:
        raise SystemExit(f"error: --num must be >= 1, got {args.num}")
    pipe = load_pipeline(args.model, args.scheduler)
    labels = args.class_labels or pipe.class_names
    try:
        ids = [pipe.class_id(int(x) if x.isdigit() else x) for x in labels]
        generators = [torch.Generator().manual_seed(args.seed + i) for i in range(len(ids) * args.num)]
        images = pipe(class_labels=ids, num_images_per_label=args.num, generator=generators, **sampling_kwargs(args)).images
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    rows = [images[i * args.num:(i + 1) * args.num] for i in range(len(ids))]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labelled_grid(rows, [pipe.class_names[i] for i in ids]).save(out)
    print(f"wrote {out} ({len(images)} images: {args.num} per class for {', '.join(pipe.class_names[i] for i in ids)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashion-ddpm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="sample a labelled grid of images")
    gen.add_argument("--class", dest="class_labels", action="append", help="class name or id; repeat for more (default: all)")
    gen.add_argument("--num", type=int, default=8, help="images per class")
    gen.add_argument("--out", default="samples.png", help="output PNG")
    add_sampling_args(gen)
    gen.set_defaults(func=cmd_generate)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """Subcommands defined next to the code they run (evaluation, pictures); imported lazily to keep start-up fast."""
    from . import commands

    return commands.REGISTER


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
