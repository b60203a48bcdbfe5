"""The demo's requests: the limits of one request, the checks, a request as `generate` arguments, and what one
request makes (the labelled grid, its downloads, the reverse process of one image, the equivalent command line).

No Gradio here, and nothing heavy at import: torch, diffusers and PIL are imported inside the functions that sample or
draw. The page itself is `app.py`; the Space folder `space.py`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

from ..checks import is_finite_number, is_number
from ..settings import SamplingSettings

# Limits of one request, so that one visitor cannot hold the CPU for long (2000 image-steps of the shipped model are
# about a minute on 2 CPU cores). The pipeline itself also rejects steps above the model's training steps.
MAX_IMAGES_PER_CLASS = 10
MAX_IMAGES_PER_REQUEST = 40
MAX_STEPS = 100
MAX_IMAGE_STEPS = 2000  # images x steps of one request (the reverse-process image comes on top)
MAX_GUIDANCE = 10.0
MAX_SEED = 2**31 - 1
DEFAULT_IMAGES_PER_CLASS = 1
DEMO_BATCH_SIZE = 10  # images per pipeline call: the progress bar counts batches (the images do not depend on it)
REVERSE_STRIP_FRAMES = 10  # the strip shows x_t about every steps / 10 steps; the GIF shows every step
GIF_SCALE, GIF_FRAME_MS, GIF_LAST_FRAME_MS = 6, 60, 1500


class DemoInputError(ValueError):
    """A request the demo refuses (shown in the page as an error message)."""


def _whole(name: str, value, low: int, high: int) -> int:
    if not is_finite_number(value) or value != int(value):
        raise DemoInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise DemoInputError(f"{name} must be from {low} to {high}, got {int(value)}")
    return int(value)


def check_request(pipe, classes, per_class, sampler, steps, guidance, seed, style=None) -> dict:
    """The request as `generate` arguments, or DemoInputError naming the first bad value and what is accepted.

    Checks every limit of this module before any work; class names go through the pipeline's own resolution.
    """
    from ..schedulers import SAMPLER_NAMES

    if classes is None or (isinstance(classes, (list, tuple)) and not classes):
        raise DemoInputError("Choose at least one class.")
    try:
        class_ids = list(dict.fromkeys(pipe.resolve_class_ids(list(classes) if isinstance(classes, tuple) else classes)))
    except ValueError as e:
        raise DemoInputError(str(e)) from None
    per_class = _whole("Images per class", per_class, 1, MAX_IMAGES_PER_CLASS)
    if sampler not in SAMPLER_NAMES:
        raise DemoInputError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}.")
    max_steps = min(MAX_STEPS, pipe.scheduler.config.num_train_timesteps)
    steps = _whole("Steps", steps, 1, max_steps)
    if not is_number(guidance) or not (0 <= guidance <= MAX_GUIDANCE):
        raise DemoInputError(f"Guidance must be a number from 0 to {MAX_GUIDANCE:g}, got {guidance!r}")
    seed = _whole("Seed", seed, 0, MAX_SEED)
    total = per_class * len(class_ids)
    if total > MAX_IMAGES_PER_REQUEST:
        raise DemoInputError(f"{len(class_ids)} classes x {per_class} images = {total} images; at most "
                             f"{MAX_IMAGES_PER_REQUEST} per request. Choose fewer classes or images per class.")
    if total * steps > MAX_IMAGE_STEPS:
        raise DemoInputError(f"{total} images x {steps} steps = {total * steps} image-steps; at most {MAX_IMAGE_STEPS} "
                             f"per request. Lower the steps (e.g. {sampler_hint(sampler)}) or the number of images.")
    try:  # the model's own checks (a few-step student: its sampler, step counts and w range only)
        settings = SamplingSettings.resolve(pipe, sampler=sampler, steps=steps, guidance=float(guidance)).check(pipe)
    except ValueError as e:
        raise DemoInputError(str(e)) from None
    request = {"labels": class_ids, "per_label": per_class, "seed": seed, "settings": settings}
    if isinstance(style, str) and style.strip():  # a style model's request (the page's Style box; empty = none)
        try:
            request["style"] = pipe.parse_style(style)
        except ValueError as e:
            raise DemoInputError(str(e)) from None
    return request


def style_with(text: str, attribute: str, value: float | None, descriptors: dict[str, tuple[str, float]]) -> str:
    """The Style box's text with `attribute` set to `value` (a slider moved) or made free (None): every word or
    attribute=percentile pair of that attribute is replaced, the rest of the request kept as typed."""
    kept = [w for w in re.split(r"[\s,]+", (text or "").strip()) if w and w.lower().partition("=")[0] != attribute
            and descriptors.get(w.lower(), (None,))[0] != attribute]
    return " ".join(kept + ([] if value is None else [f"{attribute}={float(value):.2f}"]))


def sampler_hint(sampler: str) -> str:
    from ..schedulers import default_steps

    return "dpm++ with 10 steps" if default_steps(sampler) >= 100 else f"{sampler} with 10 steps"


def defaults(pipe) -> dict:
    """The form's starting values: every class, DEFAULT_IMAGES_PER_CLASS, and the model's own sampling settings."""
    s = SamplingSettings.resolve(pipe)
    return {"classes": list(pipe.class_names), "per_class": DEFAULT_IMAGES_PER_CLASS, "sampler": s.sampler,
            "steps": min(s.steps, MAX_STEPS), "guidance": s.guidance, "seed": 0}


def steps_for(pipe, sampler: str) -> int:
    """The step count the form shows for a sampler: the model's own for its saved sampler, else the sampler's."""
    return min(SamplingSettings.resolve(pipe, sampler=sampler).steps, MAX_STEPS)


def grid_title(settings: SamplingSettings, seed: int, style: dict | None = None) -> str:
    """The grid's title, as `fashion-ddpm generate` writes it (so both pictures are identical)."""
    from ..sampling import style_text

    return f"{settings.describe()}{', style ' + style_text(style) if style else ''}, seed {seed}"


def cli_command(request: dict, class_names: list[str], model: str | None = None, fast: bool = False) -> str:
    """The `fashion-ddpm generate` command that writes the same grid (`fast`: of the shipped student, `--fast`)."""
    import shlex

    parts = ["fashion-ddpm", "generate"] + (["--model", model] if model else []) + (["--fast"] if fast else [])
    for c in request["labels"]:
        parts += ["--class", class_names[c]]
    parts += ["--num", str(request["per_label"]), *request["settings"].cli_args(), "--seed", str(request["seed"])]
    if request.get("style"):
        parts += ["--style", " ".join(f"{a}={v:g}" for a, v in request["style"].items())]
    return shlex.join(parts)


def sample_grid(pipe, request: dict, progress=None, step_callback=None):
    """(labelled grid, Samples) of a checked request, through `pipeline.sampling.generate`."""
    from ..images import labelled_grid
    from ..sampling import generate

    samples = generate(pipe, batch_size=DEMO_BATCH_SIZE, progress=progress, callback_on_step_end=step_callback, **request)
    rows, names = samples.rows()
    return labelled_grid(rows, names, title=grid_title(samples.settings, request["seed"], samples.style)), samples


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def image_file_names(samples) -> list[str]:
    """Names of the single PNGs in the zip: class, index within the class and the image's own seed."""
    count, names = {}, []
    for c, s in zip(samples.class_ids, samples.seeds):
        j = count.get(c, 0)
        count[c] = j + 1
        names.append(f"{_slug(samples.class_names[c])}_{j:02d}_seed{s}.png")
    return names


def write_downloads(grid, samples, folder: str | os.PathLike) -> tuple[Path, Path]:
    """samples.png (the grid) and samples.zip (every image as its own 28x28 PNG) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png, archive = folder / "samples.png", folder / "samples.zip"
    grid.save(png)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, image in zip(image_file_names(samples), samples.pil()):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            z.writestr(name, buffer.getvalue())
    return png, archive


def reverse_process(pipe, class_id: int, request: dict, folder: str | os.PathLike):
    """The reverse process of image 0 of `class_id` (the grid's first image of that class): (GIF path, strip image).

    The GIF shows x_t after every step; the strip about REVERSE_STRIP_FRAMES columns (`visualize.reverse_process_frames`).
    """
    from PIL import Image

    from ..images import labelled_grid, model_range_to_unit, to_pil
    from ..visualize import reverse_process_frames

    frames, labels, samples = reverse_process_frames(pipe, [class_id], every=1, seed=request["seed"],
                                                     settings=request["settings"], style=request.get("style"))
    cells = [to_pil(model_range_to_unit(f.float()))[0] for f in frames]
    size = cells[0].width * GIF_SCALE
    big = [im.resize((size, size), Image.NEAREST) for im in cells]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gif = folder / f"reverse_{_slug(pipe.class_names[class_id])}.gif"
    durations = [GIF_FRAME_MS] * (len(big) - 1) + [GIF_LAST_FRAME_MS]
    big[0].save(gif, save_all=True, append_images=big[1:], duration=durations, loop=0)
    every = max(1, round((len(cells) - 1) / REVERSE_STRIP_FRAMES))
    keep = sorted(set(range(0, len(cells) - 1, every)) | {len(cells) - 1})
    title = (f"Reverse process ({samples.settings.describe()}, seed {request['seed']}), "
             f"x_t every {every} step{'s' if every > 1 else ''}")
    strip = labelled_grid([[cells[k] for k in keep]], [pipe.class_names[class_id]], [labels[k] for k in keep], scale=3, title=title)
    return gif, strip
