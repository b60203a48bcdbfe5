"""`fashion-ddpm evaluate`: judge accuracy, judge-FID and Inception FID/KID, each beside its real-data floor."""

from __future__ import annotations

from pathlib import Path

from .common import (
    add_sampling_args,
    check_output_folder,
    command_line,
    display_path,
    int_at_least,
    load_pipeline,
    positive_int,
    sampling_settings_from_args,
)

DEFAULT_REF_SIZE = 2000  # = pipeline.evaluation.fidelity.DEFAULT_REF_SIZE (not imported: it pulls in torch)
DEFAULT_JUDGE_REF_SIZE = 10000


def register(sub):
    ev = sub.add_parser("evaluate", help="judge accuracy, judge-FID and Inception FID/KID of generated images, "
                                         "beside real-data floors",
                        description="Generates N images per class and scores them against the Fashion-MNIST test set.")
    ev.add_argument("--num-per-class", type=positive_int, required=True, help="generated images per class (N = 10 x this)")
    add_sampling_args(ev)
    ev.add_argument("--out", default=None, help="output folder for metrics.json / metrics.md / samples.png "
                                                "(default: runs/eval/<model>_n<N>_g<G>_<sampler><steps>_seed<S>)")
    ev.add_argument("--no-inception", action="store_true", help="skip Inception FID/KID (the slow part on CPU)")
    ev.add_argument("--update-model-card", action="store_true",
                    help="fill the metrics section of the model folder's README.md with the results")
    ev.add_argument("--ref-size", type=int_at_least(2), default=DEFAULT_REF_SIZE,
                    help=f"test images in the Inception reference statistics (default {DEFAULT_REF_SIZE}, cached)")
    ev.add_argument("--judge-ref-size", type=int_at_least(2), default=DEFAULT_JUDGE_REF_SIZE,
                    help=f"test images in the judge reference statistics (default {DEFAULT_JUDGE_REF_SIZE}: all)")
    ev.add_argument("--batch-size", type=positive_int, default=100, help="images per pipeline call")
    ev.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files "
                                                     "(default: $FASHION_MNIST_DIR, Debian's package, the Hub)")
    ev.set_defaults(func=run, _parser=ev)


def run(args):
    from ..evaluation.fidelity import evaluate, metrics_markdown
    from ..models import resolve_model

    args.model = display_path(resolve_model(args.model))  # reports name no machine-specific absolute path
    card = Path(args.model) / "README.md"
    if args.update_model_card and not card.is_file():
        raise ValueError(f"--update-model-card needs a model card at {card} (training writes one)")
    name = Path(args.model).name or args.model
    out = args.out or str(Path("runs", "eval", f"{name}_n{args.num_per_class}_g{args.guidance if args.guidance is not None else 'default'}"
                                                f"_{args.scheduler or 'saved'}{args.steps or ''}_seed{args.seed}"))
    check_output_folder(out)
    pipe = load_pipeline(args)
    command = command_line(args._parser, args, ["fashion-ddpm", "evaluate", "--model", str(args.model), "--num-per-class",
                                                str(args.num_per_class)], skip=("out", "update_model_card", "model", "num_per_class"))
    result = evaluate(pipe, args.num_per_class, seed=args.seed, inception=not args.no_inception,
                      batch_size=args.batch_size, ref_size=args.ref_size, judge_ref_size=args.judge_ref_size,
                      data_dir=args.data_dir, out_dir=out, command=command, model_name=args.model,
                      settings=sampling_settings_from_args(args, pipe), style=args.style)
    print(f"wrote {Path(out) / 'metrics.json'}, {Path(out) / 'metrics.md'} and {Path(out) / 'samples.png'}")
    if args.update_model_card:
        from ..training.model_card import fill_metrics

        fill_metrics(card, metrics_markdown(result), result)
        print(f"filled the metrics section of {card}")
    return result
