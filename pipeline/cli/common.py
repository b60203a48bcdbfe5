"""Pieces every command shares: argument types, the sampling options, output-path checks, model loading.

Nothing here imports torch or diffusers at module level: `fashion-ddpm --help` and argument errors stay instant.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..schedulers import SAMPLER_NAMES


def int_at_least(low: int):
    """argparse type: an int >= low, with an error naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


positive_int = int_at_least(1)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def class_label(text: str) -> int | str:
    """--class value: digits (also negative ones, which the pipeline then rejects as out of range) are ids."""
    return int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else text


class FastModel(argparse.Action):
    """`--fast`: the shipped few-step student, as if its folder were given to --model."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..models import fast_model

        namespace.model = display_path(str(fast_model()))  # reports and cards name it relative to the working folder


def add_model_args(parser: argparse.ArgumentParser):
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="saved pipeline folder or Hub id (default: the shipped model, "
                                       "or $FASHION_DDPM_MODEL)")
    which.add_argument("--fast", action=FastModel, nargs=0, dest="model",
                       help="the shipped few-step student (pretrained/fashion-ddpm-cpu-fast), 4 U-Net passes per image")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")


def add_sampling_args(parser: argparse.ArgumentParser, seed: bool = True):
    """--model, --device, --scheduler, --steps, --guidance, --guidance-interval, --guidance-rescale, --seed."""
    add_model_args(parser)
    parser.add_argument("--scheduler", choices=SAMPLER_NAMES, default=None,
                        help="sampler (default: the one saved with the model)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="inference steps (default: the model's, or the named sampler's)")
    parser.add_argument("--guidance", type=non_negative_float, default=None,
                        help="classifier-free guidance scale w (default: the model's measured best)")
    parser.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="guide only while the noise level t/T is in [LOW, HIGH] (default: the model's; 0 1 = every step)")
    parser.add_argument("--guidance-rescale", type=float, default=None, help="guidance rescale phi in [0, 1]")
    parser.add_argument("--timesteps", type=int, nargs="+", default=None, metavar="T",
                        help="the exact timesteps, noisiest first (a searched schedule; samplers ddpm, ddim, dpm++, "
                             "euler); default: the model's own, else the sampler's even spacing of --steps")
    parser.add_argument("--style-guidance", type=non_negative_float, default=None, metavar="W",
                        help="a style model: guide the style request by its own weight W beside the class's "
                             "(compositional guidance; default: the model's, else class and style together)")
    parser.add_argument("--guide-scale", type=non_negative_float, default=None, metavar="A",
                        help="a model with a guide U-Net: autoguidance weight A, every step adds A * (out(x, c) - "
                             "guide(x, c)) (default: the model's; 0 = no guide)")
    parser.add_argument("--style", default=None, metavar="STYLE",
                        help="a style model's request: descriptor words ('wide dark') or percentiles within the class "
                             "('width=0.9,pattern=0.1'); attributes not named are free")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="image j of class c uses seed + 1e6 c + j")


def add_training_run_args(parser: argparse.ArgumentParser, config_help: str, base_model_help: str):
    """The flags of a training command (`fashion-ddpm train`, which `train_conditional.py` is, and `fashion-ddpm
    distill`): a config file with key=value overrides, resuming, and the upload of the exported folder."""
    parser.add_argument("--config", default=None, help=config_help)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config (YAML values)")
    parser.add_argument("--resume_from_checkpoint", default=None,
                        help='"latest" (the newest complete checkpoint of the run, if any) or a checkpoint folder')
    parser.add_argument("--push_to_hub", action="store_true", help="upload the exported folder (not checkpoints)")
    parser.add_argument("--hub_model_id", help="user/name on the Hub")
    parser.add_argument("--hub_token", help="defaults to HF_TOKEN, then the saved login (hf auth login)")
    parser.add_argument("--hub_base_model", help=base_model_help)


def check_training_run_args(args):
    """The flags of `add_training_run_args` that can be judged without the config: a one-line ValueError before any
    data, model or trajectory is loaded."""
    resume = args.resume_from_checkpoint
    if resume not in (None, "latest") and not Path(resume).is_dir():
        raise ValueError(f"--resume_from_checkpoint {resume}: no such checkpoint folder; give \"latest\" or the "
                         "folder of one checkpoint (OUTPUT_DIR/checkpoints/checkpoint-N)")
    if not args.push_to_hub:  # an id without the flag would silently upload nothing
        given = [flag for flag in ("hub_model_id", "hub_base_model") if getattr(args, flag) is not None]
        if given:
            raise ValueError(f"--{given[0]} {getattr(args, given[0])} is given without --push_to_hub; add --push_to_hub "
                             "to upload the exported folder, or leave it out")


def sampling_overrides(args) -> dict:
    """The options of `add_sampling_args` the user gave, as `SamplingSettings.resolve` keywords."""
    given = {"sampler": args.scheduler, "steps": args.steps, "guidance": args.guidance,
             "interval": tuple(args.guidance_interval) if args.guidance_interval is not None else None,
             "rescale": args.guidance_rescale,
             "timesteps": tuple(args.timesteps) if getattr(args, "timesteps", None) is not None else None,
             "style_guidance": getattr(args, "style_guidance", None), "guide": getattr(args, "guide_scale", None)}
    return {k: v for k, v in given.items() if v is not None}


def sampling_settings_from_args(args, pipe):
    """The `SamplingSettings` of a command: the options given, the model's defaults for the rest, checked (one-line
    ValueError naming the bad value, before any image is made)."""
    from ..settings import SamplingSettings

    if getattr(args, "style", None) is not None:
        pipe.parse_style(args.style)  # a style the model cannot take is named now, before any other work
    return SamplingSettings.resolve(pipe, **sampling_overrides(args)).check(pipe)


def load_pipeline(args):
    """The model named by --model / --device (checked; errors are one line)."""
    from diffusers.utils import logging as diffusers_logging

    from ..models import load_pipeline as load

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" bars say nothing on a command line

    return load(args.model, device=args.device)


def command_line(parser: argparse.ArgumentParser, args, lead: list[str], skip: tuple[str, ...] = (),
                 always: tuple[str, ...] = ("seed",)) -> str:
    """The command as a reproducible string for reports: `lead` (e.g. ["fashion-ddpm", "evaluate", "--model", M]),
    then every option that differs from its default (and those in `always`), never those in `skip`."""
    import shlex

    parts = list(lead)
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", *skip):
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False or (value == action.default and action.dest not in always):
            continue
        flag = action.option_strings[-1]
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def display_path(path: str) -> str:
    """A local path relative to the working folder when it lies inside it (reports are committed); else unchanged."""
    import os

    if not os.path.exists(path):
        return path  # a Hub id
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def check_image_path(path: str, flag: str = "--out") -> Path:
    """An output image file whose format PIL can write; its folder is created. Fails before any work."""
    from PIL import Image

    out = Path(path)
    if path.endswith(("/", "\\")) or out.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give an image file name such as samples.png")
    extensions = Image.registered_extensions()
    if out.suffix.lower() not in extensions:
        raise ValueError(f"{flag} {path}: cannot write {out.suffix or 'a file without extension'}; use .png, .jpg, "
                         ".webp or another image extension")
    check_writable_folder(out.parent, f"{flag} {path}")
    return out


def check_writable_folder(folder: Path, what: str):
    """Fails now, naming `what`, unless files can be created in `folder` (or in the folder that would hold it once
    created): an unwritable output is found before any image is generated, not after."""
    import tempfile

    existing = folder.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what}: {existing} is a file, not a folder; give a path in a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ValueError(f"{what}: cannot write into {existing} ({e.strerror or type(e).__name__}); give a writable path") from None


def check_output_folder(path: str, flag: str = "--out") -> Path:
    """An output folder (created later); fails now when the name is taken by a file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    return out


def save_image(image, path: Path):
    """The image written whole or not at all (a killed process never leaves half a PNG); a full disk is one line."""
    from ..io import atomic_save_image

    try:
        atomic_save_image(image, path)
    except OSError as e:  # e.g. the disk filled up: name the file asked for, not the temporary one
        raise ValueError(f"could not write {path}: {e.strerror or type(e).__name__}") from None
    return path

