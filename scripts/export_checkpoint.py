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
    parser.add_argument("--guide", default=None, help="a class-only model (folder or Hub id) whose U-Net becomes the "
                        "export's autoguidance guide (the guide_unet component)")
    parser.add_argument("--guide-scale", type=float, default=None, help="the guide's default weight a (with --guide)")
    parser.add_argument("--style-guidance-scale", type=float, default=None,
                        help="a style model's default style guidance w_s (the style guided as its own term)")
    args = parser.parse_args(argv)
    try:
        out = export_checkpoint(args.run, args.step, args.out, args.overrides, guide=args.guide,
                                guide_scale=args.guide_scale, style_guidance_scale=args.style_guidance_scale)
        print(f"exported {out}")
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
