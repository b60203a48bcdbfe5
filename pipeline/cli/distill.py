"""`fashion-ddpm distill`: a few-step student of a class-only model (pipeline/training/distill.py).

    fashion-ddpm distill --config configs/distill.yaml [key=value ...]
    accelerate launch -m pipeline.cli distill --config configs/distill.yaml --resume_from_checkpoint latest
"""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("distill", help="distil a class-only model into a 1/2/4-step student with w as an input")
    p.add_argument("--config", default=None, help="a YAML file of DistillConfig keys (configs/distill.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (YAML values)")
    p.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder')
    p.set_defaults(func=run)


def run(args):
    from ..training.distill import load_config

    config = load_config(args.config, args.overrides)  # bad keys and values: one line, before any model is loaded
    from ..models import resolve_model

    resolve_model(config.teacher)
    from ..training.distill import distill

    folder = distill(config, args.resume_from_checkpoint)
    print(f"wrote {folder}")
    return folder
