"""`fashion-ddpm synthesize`: a labelled synthetic dataset (arrow / parquet / imagefolder) with a dataset card."""

from __future__ import annotations

from ..synthesis import DEFAULT_FORMAT, DEFAULT_SHARD_SIZE, FORMATS  # stdlib-only at import time
from .common import (
    add_sampling_args,
    check_output_folder,
    class_label,
    command_line,
    load_pipeline,
    positive_int,
    sampling_settings_from_args,
)


def register(sub):
    syn = sub.add_parser(
        "synthesize", help="write N generated images per class as a `datasets` dataset with a dataset card",
        description="Generates N images per class into a `datasets` dataset (image, label and per-image seed, sampler, "
                    "steps, guidance) with a dataset card. Kill-safe: the same command on the same --out resumes.")
    syn.add_argument("--per-class", type=positive_int, required=True, help="images per class")
    syn.add_argument("--out", required=True, help="output folder: new, empty, or an unfinished run of the same settings")
    syn.add_argument("--classes", nargs="+", type=class_label, default=None, metavar="CLASS",
                     help="class names or ids (default: every class of the model)")
    syn.add_argument("--format", choices=FORMATS, default=DEFAULT_FORMAT,
                     help="arrow: Dataset.save_to_disk (datasets.load_from_disk); parquet: data/*.parquet; "
                          "imagefolder: PNG files + metadata.parquet (default arrow)")
    syn.add_argument("--shard-size", type=positive_int, default=DEFAULT_SHARD_SIZE,
                     help=f"images per shard, the unit a kill can lose (default {DEFAULT_SHARD_SIZE})")
    syn.add_argument("--batch-size", type=positive_int, default=100, help="images per pipeline call")
    syn.add_argument("--push-to-hub", metavar="USER/NAME", default=None,
                     help="upload the dataset and its card to this Hub dataset repo (checked before any sampling)")
    syn.add_argument("--hub-token", default=None, help="Hub token (default: the logged-in token or $HF_TOKEN)")
    syn.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_sampling_args(syn)
    syn.set_defaults(func=run, _parser=syn)


def run(args):
    from ..models import SHIPPED_MODEL_NAME
    from ..synthesis import prepare
    from ..synthesis.processes import Processes

    out = check_output_folder(args.out)
    processes = Processes.from_environment()  # under `accelerate launch`: this process's share, on its own device
    if args.device is None and processes.device is not None:
        args.device = str(processes.device)
    pipe = load_pipeline(args)
    job = prepare(pipe, out, args.per_class, args.classes, args.seed, fmt=args.format, shard_size=args.shard_size,
                  batch_size=args.batch_size, model_name=args.model or SHIPPED_MODEL_NAME,
                  command=command_line(args._parser, args, ["fashion-ddpm", "synthesize"],  # never the token
                                       skip=("hub_token", "no_progress", "device"), always=("seed", "format")),
                  push_to_hub=args.push_to_hub, hub_token=args.hub_token, settings=sampling_settings_from_args(args, pipe),
                  style=args.style, processes=processes)
    if not processes.is_main:
        job.run(progress=False)
        return job.summary
    if job.state == "resume":
        done = sum(s.count for s in job.shards if job.done(s))
        print(f"resuming {out}: {done} of {job.num_images} images already written")
    summary = job.run(progress=not args.no_progress)
    s = job.settings
    what = f"{s['per_class']} per class for {len(s['class_ids'])} classes; {job.sampling.describe()}, seed {s['seed']}"
    if summary["already_complete"]:
        print(f"{out} is already complete ({summary['images']} images, {what}); nothing to do")
    else:
        rate = summary.get("seconds_per_image")
        by = f" by {processes.count} processes" if processes.count > 1 else ""
        print(f"wrote {out} ({summary['images']} images as {s['format']}: {what}; generated {summary['generated']} now"
              + by + (f", {rate:.4f} s/image" if rate else "") + ")")
    if summary.get("url"):
        print(f"pushed to {summary['url']}")
    return summary
