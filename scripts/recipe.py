#!/usr/bin/env python
"""Train a config, then choose its guidance by measurement, export and evaluate it: the recipe behind every shipped model.

    python scripts/recipe.py --config configs/fashion_mnist.yaml --out runs/recipe                 # a GPU: ~10 min
    python scripts/recipe.py --config configs/fashion_mnist.yaml --out runs/recipe --max-train-minutes 8
    python scripts/recipe.py --config configs/tiny.yaml --out runs/try --num-per-class 2 --no-inception   # seconds
    python scripts/recipe.py ... --launcher "accelerate launch --multi_gpu --num_processes 8"          # training only

Phases (pipeline/training/recipe.py): train (train_conditional.py, resumed from its newest checkpoint), a guidance
sweep at N = 10 x --num-per-class on the sampler the config exports with, the default chosen as the lowest judge-FID
with judge accuracy >= --min-accuracy, export with it, `fashion-ddpm evaluate` of the export (its model card filled).
The same command on the same --out resumes where it stopped. Bad input is named before anything runs.
"""

import argparse
import sys
from pathlib import Path

from pipeline.checks import comma_separated
from pipeline.training.recipe import MIN_JUDGE_ACCURACY, SWEEP_GUIDANCE, prepare_recipe  # torch-free at import

guidance_list = comma_separated(float, "numbers", "1,1.5,2")  # argparse type


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file in configs/ (default: TrainConfig's defaults, the default recipe)")
    parser.add_argument("--out", required=True, help="output folder (run/, guidance_sweep.json, model/, evaluate/)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config, as for train_conditional.py")
    parser.add_argument("--max-train-minutes", type=float, default=None,
                        help="wall-clock budget of the training updates (config key max_train_minutes)")
    parser.add_argument("--num-per-class", type=int, default=100, help="images per class in the sweep and the evaluation")
    parser.add_argument("--guidance", type=guidance_list, default=list(SWEEP_GUIDANCE),
                        help=f"w values to sweep, each on the recipe's interval and at every step (default "
                             f"{','.join(f'{w:g}' for w in SWEEP_GUIDANCE)})")
    parser.add_argument("--min-accuracy", type=float, default=MIN_JUDGE_ACCURACY,
                        help=f"judge accuracy the default guidance must reach (default {MIN_JUDGE_ACCURACY})")
    parser.add_argument("--no-inception", action="store_true", help="evaluate without Inception FID (judge metrics only)")
    parser.add_argument("--device", default=None, help="torch device of the sweep and evaluation (training: Accelerate's)")
    parser.add_argument("--launcher", default=None, help='how to start training (default: this Python), e.g. '
                                                         '"accelerate launch --multi_gpu --num_processes 8"')
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.max_train_minutes is not None:
        overrides.append(f"max_train_minutes={args.max_train_minutes}")
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")
    try:
        recipe = prepare_recipe(args.config, overrides, args.out, num_per_class=args.num_per_class, guidances=args.guidance,
                                min_accuracy=args.min_accuracy, inception=not args.no_inception, device=args.device,
                                launcher=args.launcher, data_dir=args.data_dir)
        log = recipe.run()
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"recipe: the model is {Path(args.out) / 'model'} (default {log['phases']['sweep']['chosen']}); "
          f"its evaluation is in {Path(args.out) / 'evaluate'}")


if __name__ == "__main__":
    sys.exit(main())
