#!/usr/bin/env python
"""`fashion-ddpm train` as an Accelerate script: the same flags, the same function (pipeline/cli/train.py).

    accelerate launch train_conditional.py --config configs/cpu.yaml [key=value ...]
    python train_conditional.py --config configs/tiny.yaml output_dir=runs/tiny num_epochs=2
"""

import argparse
import sys

from pipeline.cli import run_command
from pipeline.cli.train import DESCRIPTION, add_train_args


def main(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_command(add_train_args(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
