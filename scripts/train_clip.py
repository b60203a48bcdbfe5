"""Trains the Fashion-MNIST CLIP (pipeline/training/clip.py) and saves it as pretrained/fashion-clip.

    python scripts/train_clip.py                                   # configs/clip.yaml: ~20 min on 2 CPU threads
    python scripts/train_clip.py --out /tmp/clip epochs=0.05       # key=value overrides of the config

Then measure it and write its card: python -m benchmarks.fashion_clip --out benchmarks/results. The same seed on the
same torch build reproduces the weights. Data come from `pipeline.data.load_dataset` (the Debian package's IDX files,
$FASHION_MNIST_DIR, or the Hub).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "clip.yaml"), help="YAML of ClipTrainConfig keys")
    parser.add_argument("--out", default=str(REPO / "pretrained" / "fashion-clip"), help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    args = parser.parse_args(argv)
    from pipeline.training.clip import ClipTrainConfig
    from pipeline.training.config import parse_override

    try:
        values = yaml.safe_load(Path(args.config).read_text()) or {}
        values.update(parse_override(o) for o in args.overrides)
        config = ClipTrainConfig.from_dict(values)
    except (OSError, ValueError, yaml.YAMLError) as e:
        parser.exit(2, f"error: {e}\n")
    import torch

    from pipeline.data import load_dataset
    from pipeline.training.clip import train_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        data = load_dataset(args.data_dir, None, "train")
    except FileNotFoundError as e:
        parser.exit(2, f"error: {e}\n")
    out = train_clip(config, data, args.out)
    print(f"saved the CLIP to {out}")


if __name__ == "__main__":
    main()
