"""`fashion-ddpm demo`: the Gradio web demo on this machine, or (--stage-space DIR) a Hugging Face Space folder."""

from __future__ import annotations

from .common import add_model_args, int_at_least, load_pipeline


def port(text: str) -> int:
    value = int_at_least(1)(text)
    if value > 65535:
        import argparse

        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {value}")
    return value


def register(sub):
    demo = sub.add_parser("demo", help="web demo (Gradio; needs the [demo] extra): generate in the browser, watch the "
                                       "reverse process; --stage-space writes a Hugging Face Space folder. Without "
                                       "--model or --fast it offers the shipped default and its few-step student")
    add_model_args(demo)
    demo.add_argument("--student", default=None, metavar="DIR_OR_HUB_ID",
                      help="a few-step student offered beside --model in the page's Model choice (default: the shipped "
                           "student beside the shipped model; none beside another --model)")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to serve on (default 127.0.0.1, this machine only; 0.0.0.0 for the network)")
    demo.add_argument("--port", type=port, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    demo.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    demo.add_argument("--data-dir", default=None,
                      help="Fashion-MNIST IDX folder for the forward-process figure (default: the usual search; "
                           "hidden when absent)")
    demo.add_argument("--stage-space", metavar="DIR", default=None,
                      help="instead of serving, write a ready-to-upload Hugging Face Space folder (app, requirements, "
                           "README, the package and the --model) to DIR")
    demo.add_argument("--hub-model-id", default=None,
                      help="with --stage-space: the Hub id of the same model, listed under models: in the Space README")
    demo.add_argument("--hub-fast-model-id", default=None,
                      help="with --stage-space: the Hub id of the few-step student staged beside it, listed too")
    demo.set_defaults(func=run)


def student_folder(args):
    """The student the page offers beside the model: --student, else the shipped few-step student beside the shipped
    default (when neither --model, --fast nor $FASHION_DDPM_MODEL names one model and the student is installed)."""
    import os

    from ..models import fast_model

    if args.student is not None:
        return args.student
    if args.model is not None or os.environ.get("FASHION_DDPM_MODEL") or not (fast_model() / "model_index.json").is_file():
        return None
    return fast_model()


def shipped_student(args):
    """The loaded `student_folder(args)` (checked to be a few-step student), or None."""
    from ..models import load_pipeline as load

    folder = student_folder(args)
    if folder is None:
        return None
    student = load(folder, device=args.device)
    if not student.is_distilled:
        raise ValueError(f"--student {folder} is not a few-step student (a distilled model); give one "
                         "`fashion-ddpm distill` made")
    return student


def run(args):
    from .. import demo

    if args.stage_space is not None:
        out = demo.stage_space(args.stage_space, args.model, args.hub_model_id, args.data_dir,
                               fast=student_folder(args), hub_fast_model_id=args.hub_fast_model_id)
        print(f"wrote the Space folder {out}; upload it with: hf upload USER/SPACE {out} . --repo-type space")
        return out
    for flag in ("hub_model_id", "hub_fast_model_id"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} only goes with --stage-space DIR")
    try:
        demo.import_gradio()
    except ModuleNotFoundError as e:  # before loading the model: the one-line fix is all the user needs
        raise ValueError(str(e)) from None
    pipe = load_pipeline(args)
    student = shipped_student(args)
    app = demo.build_demo(pipe, model_name=args.model, data_dir=args.data_dir, fast=student,
                          fast_name=None if args.student is None else args.student)
    demo.serve(app, server_name=args.host, server_port=args.port, share=args.share)
    return app
