"""`fashion-ddpm generate`: a labelled grid, one row per class."""

from __future__ import annotations

from .common import (
    add_sampling_args,
    check_image_path,
    class_label,
    load_pipeline,
    positive_int,
    sampling_settings_from_args,
    save_image,
)


def register(sub):
    gen = sub.add_parser("generate", help="sample a labelled grid of images (one row per class)")
    gen.add_argument("--class", dest="class_labels", action="append", type=class_label,
                     help="class name or id; repeat for more (default: all)")
    gen.add_argument("--num", type=positive_int, default=8, help="images per class (default 8)")
    gen.add_argument("--out", default="samples.png", help="output image (default samples.png)")
    gen.add_argument("--batch-size", type=positive_int, default=100, help="images per pipeline call")
    add_sampling_args(gen)
    gen.set_defaults(func=run)


def run(args):
    from ..images import labelled_grid
    from ..sampling import generate, style_text

    out = check_image_path(args.out)
    pipe = load_pipeline(args)
    settings = sampling_settings_from_args(args, pipe)
    samples = generate(pipe, args.class_labels, args.num, args.seed, args.batch_size, settings=settings, style=args.style)
    rows, names = samples.rows()
    title = f"{settings.describe()}{', style ' + style_text(samples.style) if samples.style else ''}, seed {args.seed}"
    save_image(labelled_grid(rows, names, title=title), out)
    print(f"wrote {out} ({len(samples)} images: {args.num} per class for {', '.join(names)}; {title})")
    return out
