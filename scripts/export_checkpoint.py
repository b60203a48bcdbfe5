#!/usr/bin/env python
"""Export the EMA pipeline of a training run's checkpoint (see pipeline/training/export.py)."""

import argparse
import sys

from pipeline.training.export import export_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="training output folder (train_config.json, checkpoints/)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    parser.add_argument("--out", required=True, help="folder for the exported pipeline")
    parser.add_argument("overrides", nargs="*", help="sample_sampler=..., sample_steps=..., sample_guidance_scale=..., description=...")
    args = parser.parse_args(argv)
    try:
        print(f"exported {export_checkpoint(args.run, args.step, args.out, args.overrides)}")
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
