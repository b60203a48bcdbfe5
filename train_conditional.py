#!/usr/bin/env python
"""Train a class-conditional fashion-ddpm pipeline.

    accelerate launch train_conditional.py --config configs/cpu.yaml [key=value ...]
    python train_conditional.py --config configs/tiny.yaml output_dir=runs/tiny num_epochs=2

Keys are those of `pipeline.training.config.TrainConfig` (each one commented there; configs/README.md lists the
config files); a `key=value` after the config file overrides it, the value parsed as YAML. Bad keys and values are
rejected before any data is loaded.
"""

import argparse
import sys

from pipeline.training.config import load_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file in configs/")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (YAML values)")
    parser.add_argument("--resume_from_checkpoint", help='"latest" or a checkpoint folder')
    parser.add_argument("--push_to_hub", action="store_true", help="upload the exported folder (not checkpoints)")
    parser.add_argument("--hub_model_id", help="user/name on the Hub")
    parser.add_argument("--hub_token", help="defaults to HF_TOKEN, then the saved login (hf auth login)")
    parser.add_argument("--hub_base_model", help="Hub id of the init_from model (default: its folder name beside "
                                                 "--hub_model_id, which must exist)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")

    from pipeline.training.trainer import train  # torch/diffusers are imported only for a valid config

    try:
        train(config, args.resume_from_checkpoint, args.push_to_hub, args.hub_model_id, args.hub_token,
              args.hub_base_model)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
