"""`fashion-ddpm evaluate-clip` (CLIP scores of generated images) and `fashion-ddpm best-of-n` (keep CLIP's best)."""

from __future__ import annotations

from ..evaluation.clip import DEFAULT_TEMPLATES, OPENAI_CLIP_MODEL, SHIPPED_CLIP_NAME, ZERO_SHOT_TEMPLATE
from .common import add_sampling_args, check_output_folder, class_label, load_pipeline, positive_int, sampling_settings_from_args


def register(sub):
    _scoring_command(sub, "evaluate-clip", "score generated images with CLIP (quality prompts, zero-shot class)",
                     ("--num-per-class", 10, "images generated per class"),
                     ("--top", 4, "images per class in the best / worst grids"), "clip-eval", run_evaluate_clip)
    _scoring_command(sub, "best-of-n", "generate a pool per class and keep the CLIP-best images",
                     ("--pool", 15, "images generated per class"),
                     ("--keep", 3, "images kept per class (highest CLIP quality)"), "best-of-n", run_best_of_n)


def _scoring_command(sub, name: str, help: str, generated: tuple, shown: tuple, out: str, func):
    """A command that generates images per class and scores them with CLIP: the sampling flags, its two counts
    (flag, default, help), --out and the CLIP flags."""
    parser = sub.add_parser(name, help=help)
    add_sampling_args(parser)
    for flag, default, text in (generated, shown):
        parser.add_argument(flag, type=positive_int, default=default, help=text)
    parser.add_argument("--out", default=out, help="output folder")
    _add_clip_args(parser)
    parser.set_defaults(func=func)


def _add_clip_args(parser):
    parser.add_argument("--clip-model", default=None,
                        help=f"CLIPModel Hub id or local folder (default: the shipped Fashion-MNIST CLIP, "
                             f"pretrained/{SHIPPED_CLIP_NAME}; online e.g. {OPENAI_CLIP_MODEL})")
    parser.add_argument("--templates", nargs=3, metavar=("GOOD", "CLEAR", "BLURRY"), default=list(DEFAULT_TEMPLATES),
                        help="quality prompt templates with {} for the class name: positive, positive, negative")
    parser.add_argument("--zero-shot-template", default=ZERO_SHOT_TEMPLATE,
                        help="class prompt template for the zero-shot guess")
    parser.add_argument("--class", dest="class_labels", action="append", type=class_label,
                        help="class name or id; repeat for more (default: all)")
    parser.add_argument("--clip-batch-size", type=positive_int, default=64)
    parser.add_argument("--clip-device", default=None, help="device for CLIP (default: cuda if available, else cpu)")


def _setup(args):
    """Model, CLIP and class ids, all checked before any image is generated."""
    from ..evaluation.clip import load_clip
    from ..models import check_device

    check_device(args.clip_device)
    check_output_folder(args.out)
    pipe = load_pipeline(args)
    labels = pipe.resolve_class_ids(args.class_labels)
    settings = sampling_settings_from_args(args, pipe)
    scorer = load_clip(args.clip_model, args.clip_device, args.templates, args.zero_shot_template, args.clip_batch_size)
    return pipe, scorer, labels, settings


def run_evaluate_clip(args):
    from ..evaluation.clip import evaluate_pipeline, per_class_table, table_markdown

    pipe, scorer, labels, settings = _setup(args)
    scores = evaluate_pipeline(pipe, scorer, args.num_per_class, labels, args.seed, args.out, args.top,
                               extra={"model": str(args.model or "shipped")}, settings=settings, style=args.style)
    table = per_class_table(scores)
    overall = table["overall"]
    print(table_markdown(table))
    print(f"quality {overall['quality_mean']:.3f} ± {overall['quality_std']:.3f}, zero-shot agreement "
          f"{100 * overall['zero_shot_agreement']:.1f}% over {overall['n']} images")
    print("wrote " + ", ".join(str(p) for p in scores.paths.values()))
    return scores


def run_best_of_n(args):
    from ..evaluation.best_of_n import best_of_n

    if args.keep > args.pool:
        raise ValueError(f"--keep {args.keep} is more than --pool {args.pool}; need 1 <= --keep <= --pool")
    pipe, scorer, labels, settings = _setup(args)
    result = best_of_n(pipe, scorer, args.pool, args.keep, labels, args.seed, settings=settings, style=args.style)
    paths = result.save(args.out, extra={"model": str(args.model or "shipped"), "pool": args.pool, "seed": args.seed,
                                         "sampling": settings.to_json()})
    for row in result.summary()["classes"]:
        print(f"{row['class_name']:>12}: kept quality {row['kept_quality_mean']:+.3f} vs pool {row['pool_quality_mean']:+.3f}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return result
