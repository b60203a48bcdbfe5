"""`fashion-ddpm train`: train a class-conditional pipeline (pipeline/training/trainer.py).

`train_conditional.py` at the repository's root is this command as an Accelerate script: it builds its parser with
`add_train_args` and runs `run`, so the two take the same flags and fail the same way.
"""

from __future__ import annotations

import argparse

from .common import add_training_run_args, check_training_run_args

DESCRIPTION = """Train a class-conditional fashion-ddpm pipeline.

    fashion-ddpm train --config configs/tiny.yaml output_dir=runs/tiny num_epochs=2
    fashion-ddpm train --config configs/cpu.yaml --resume_from_checkpoint latest
    accelerate launch train_conditional.py --config configs/fashion_mnist.yaml   (the same command, as a script)
    accelerate launch -m pipeline.cli train --config configs/fashion_mnist.yaml

Keys are those of `pipeline.training.config.TrainConfig` (each one commented there; configs/README.md lists the
config files); a `key=value` after the config file overrides it, the value parsed as YAML. Bad keys and values, a
missing checkpoint folder and an upload that cannot succeed are rejected before any data is loaded."""


def add_train_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of a training run, and `run` as what the parsed arguments do."""
    add_training_run_args(parser, "YAML file of TrainConfig keys in configs/ (default: TrainConfig's defaults)",
                          "Hub id of the init_from model (default: its folder name beside --hub_model_id, which must "
                          "exist)")
    parser.set_defaults(func=run)
    return parser


def register(sub):
    add_train_args(sub.add_parser("train", help="train a model from a config (as train_conditional.py)",
                                  description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter))


def run(args):
    from ..training.config import load_config

    config = load_config(args.config, args.overrides)  # bad keys and values: one line, before any data is loaded
    check_training_run_args(args)
    from ..training.trainer import train  # torch and diffusers are imported only for a valid request

    return train(config, args.resume_from_checkpoint, args.push_to_hub, args.hub_model_id, args.hub_token,
                 args.hub_base_model)
