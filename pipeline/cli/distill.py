"""`fashion-ddpm distill`: a few-step student of a class-only model (pipeline/training/distill/).

    fashion-ddpm distill --config configs/distill.yaml [key=value ...]
    accelerate launch -m pipeline.cli distill --config configs/distill.yaml --resume_from_checkpoint latest
    fashion-ddpm distill --config configs/distill.yaml --push_to_hub --hub_model_id you/fashion-ddpm-fast
"""

from __future__ import annotations

from .common import add_training_run_args, check_training_run_args


def register(sub):
    p = sub.add_parser("distill", help="distil a class-only model into a 1/2/4-step student with w as an input")
    add_training_run_args(p, "a YAML file of DistillConfig keys (configs/distill.yaml)",
                          "Hub id of the teacher (default: its folder name beside --hub_model_id, which must exist)")
    p.set_defaults(func=run)


def run(args):
    from ..training.distill import load_config

    config = load_config(args.config, args.overrides)  # bad keys and values: one line, before any model is loaded
    check_training_run_args(args)
    from ..models import resolve_model

    resolve_model(config.teacher)
    from ..hub import check_base_model, check_hub_access, push_model

    if args.push_to_hub:  # an upload that cannot succeed fails now, not after the distillation
        check_hub_access(args.hub_model_id, args.hub_token)
        check_base_model(config.teacher, args.hub_model_id, args.hub_base_model, args.hub_token, "--hub_base_model")
    from ..training.distill import distill

    folder = distill(config, args.resume_from_checkpoint)
    print(f"wrote {folder}")
    if args.push_to_hub:
        from accelerate import PartialState

        if PartialState().is_main_process:  # one upload, from the process that exported
            print(f"pushed to {push_model(folder, args.hub_model_id, args.hub_token, base_model=args.hub_base_model)}")
    return folder
