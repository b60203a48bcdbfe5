"""`fashion-ddpm visualize`: forward and reverse diffusion pictures, a sample grid and the loss curve."""

from __future__ import annotations

from .common import add_sampling_args, check_output_folder, load_pipeline, positive_int, sampling_settings_from_args


def register(sub):
    vis = sub.add_parser("visualize", help="forward/reverse diffusion pictures, a sample grid and the loss curve")
    add_sampling_args(vis)
    vis.add_argument("--metrics", default=None, help="a run's metrics.jsonl for the loss curve (skipped when absent)")
    vis.add_argument("--out", default="figures", help="output folder")
    vis.add_argument("--num-per-class", type=positive_int, default=8, help="samples per class in samples.png")
    vis.add_argument("--every", type=positive_int, default=10, help="show x_t every this many steps in reverse_process.png")
    vis.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    vis.add_argument("--no-forward", action="store_true", help="skip forward_diffusion.png (needs the test set)")
    vis.add_argument("--style-sweep", nargs="*", default=None, metavar="ATTRIBUTE",
                     help="a style model: style_sweep_<attribute>.png per attribute (percentiles 0.1 .. 0.9 across the "
                          "columns, the same seeds); no names = every attribute of the model")
    vis.set_defaults(func=run)


def run(args):
    from ..plots import read_metrics
    from ..visualize import make_all

    if args.metrics is not None:
        read_metrics(args.metrics, "--metrics")  # every line checked now: a bad file is named before minutes of drawing
    check_output_folder(args.out)
    pipe = load_pipeline(args)
    settings = sampling_settings_from_args(args, pipe)
    sweep = () if args.style_sweep is None else (args.style_sweep or pipe.style_attributes)
    if args.style_sweep is not None and not pipe.style_attributes:
        raise ValueError("--style-sweep needs a style model; this one is class-only (it takes no style)")
    if not args.no_forward:
        from ..data import load_dataset

        load_dataset(args.data_dir, split="test", data_flag="--data-dir DIR (or --no-forward to skip that figure)")
    paths = make_all(pipe, args.out, args.metrics, args.num_per_class, args.every, args.seed, args.data_dir,
                     forward=not args.no_forward, settings=settings, style=args.style,
                     style_sweep=sweep)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths
