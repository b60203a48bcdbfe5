"""The web demo: a Gradio app that samples the model (on the CPU, or --device), and the folder a Hugging Face Space needs.

Pick classes, images per class, sampler, steps, guidance and seed; Generate shows the labelled grid (the same picture
`fashion-ddpm generate` writes for the same settings: images come only from `pipeline.sampling.generate`), a PNG and a
zip of the single images to download, then the reverse process of one image as a GIF and a strip of x_t. The forward
process of real test images is shown when Fashion-MNIST is on this machine (or staged with the Space).

Gradio is an optional extra (`pip install -e ".[demo]"`) and is imported only inside the functions that need it, so
importing this module costs nothing. Command line: `fashion-ddpm demo` (`pipeline/cli/demo.py`); Space entry point:
`space/app.py`, staged with its model by `stage_space`.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

from .models import SHIPPED_MODEL_NAME
from .settings import SamplingSettings

# Limits of one request, so that one visitor cannot hold the CPU for long (2000 image-steps of the shipped model are
# about a minute on 2 CPU cores). The pipeline itself also rejects steps above the model's training steps.
MAX_IMAGES_PER_CLASS = 10
MAX_IMAGES_PER_REQUEST = 40
MAX_STEPS = 100
MAX_IMAGE_STEPS = 2000  # images x steps of one request (the reverse-process image comes on top)
MAX_GUIDANCE = 10.0
MAX_SEED = 2**31 - 1
DEFAULT_IMAGES_PER_CLASS = 1
# One sampling job at a time: on a CPU, two at once only share the same cores (each gets slower, neither gets its
# images sooner), and the pipeline's scheduler is swapped during a call. Others wait in the queue, told their place.
CONCURRENCY_LIMIT = 1
MAX_QUEUE_SIZE = 20
DEMO_BATCH_SIZE = 10  # images per pipeline call: the progress bar counts batches (the images do not depend on it)
REVERSE_STRIP_FRAMES = 10  # the strip shows x_t about every steps / 10 steps; the GIF shows every step
GIF_SCALE, GIF_FRAME_MS, GIF_LAST_FRAME_MS = 6, 60, 1500
DOWNLOAD_MAX_AGE_S = 3600  # request folders of downloads older than this are deleted by later requests

GRADIO_MISSING = ("the demo needs Gradio, which the core install leaves out: pip install -e '.[demo]' "
                  "(in a checkout) or pip install 'fashion-ddpm[demo]'")
SPACE_TEMPLATE = Path(__file__).resolve().parent.parent / "space"  # app.py, requirements.txt, README.md
SPACE_FORWARD_EXAMPLES = "forward_examples.png"  # one real test image per class, side by side (staged Space)
SPACE_MODEL_DIR = "model"


class DemoInputError(ValueError):
    """A request the demo refuses (shown in the page as an error message)."""


def import_gradio():
    """The gradio module, or ModuleNotFoundError(GRADIO_MISSING) saying which extra to install."""
    try:
        import gradio
    except ImportError:
        raise ModuleNotFoundError(GRADIO_MISSING) from None
    return gradio


# ----------------------------------------------------------------------------------------------- requests
def _whole(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value != int(value):
        raise DemoInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise DemoInputError(f"{name} must be from {low} to {high}, got {int(value)}")
    return int(value)


def check_request(pipe, classes, per_class, sampler, steps, guidance, seed) -> dict:
    """The request as `generate` arguments, or DemoInputError naming the first bad value and what is accepted.

    Checks every limit of this module before any work; class names go through the pipeline's own resolution.
    """
    from .schedulers import SAMPLER_NAMES

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
    if isinstance(guidance, bool) or not isinstance(guidance, numbers.Real) or not (0 <= guidance <= MAX_GUIDANCE):
        raise DemoInputError(f"Guidance must be a number from 0 to {MAX_GUIDANCE:g}, got {guidance!r}")
    seed = _whole("Seed", seed, 0, MAX_SEED)
    total = per_class * len(class_ids)
    if total > MAX_IMAGES_PER_REQUEST:
        raise DemoInputError(f"{len(class_ids)} classes x {per_class} images = {total} images; at most "
                             f"{MAX_IMAGES_PER_REQUEST} per request. Choose fewer classes or images per class.")
    if total * steps > MAX_IMAGE_STEPS:
        raise DemoInputError(f"{total} images x {steps} steps = {total * steps} image-steps; at most {MAX_IMAGE_STEPS} "
                             f"per request. Lower the steps (e.g. {sampler_hint(sampler)}) or the number of images.")
    settings = SamplingSettings.resolve(pipe, sampler=sampler, steps=steps, guidance=float(guidance))
    return {"labels": class_ids, "per_label": per_class, "seed": seed, "settings": settings}


def sampler_hint(sampler: str) -> str:
    from .schedulers import default_steps

    return "dpm++ with 10 steps" if default_steps(sampler) >= 100 else f"{sampler} with 10 steps"


def defaults(pipe) -> dict:
    """The form's starting values: every class, DEFAULT_IMAGES_PER_CLASS, and the model's own sampling settings."""
    s = SamplingSettings.resolve(pipe)
    return {"classes": list(pipe.class_names), "per_class": DEFAULT_IMAGES_PER_CLASS, "sampler": s.sampler,
            "steps": min(s.steps, MAX_STEPS), "guidance": s.guidance, "seed": 0}


def steps_for(pipe, sampler: str) -> int:
    """The step count the form shows for a sampler: the model's own for its saved sampler, else the sampler's."""
    return min(SamplingSettings.resolve(pipe, sampler=sampler).steps, MAX_STEPS)


def grid_title(settings: SamplingSettings, seed: int) -> str:
    """The grid's title, as `fashion-ddpm generate` writes it (so both pictures are identical)."""
    return f"{settings.describe()}, seed {seed}"


def cli_command(request: dict, class_names: list[str], model: str | None = None) -> str:
    """The `fashion-ddpm generate` command that writes the same grid."""
    import shlex

    parts = ["fashion-ddpm", "generate"] + (["--model", model] if model else [])
    for c in request["labels"]:
        parts += ["--class", class_names[c]]
    parts += ["--num", str(request["per_label"]), *request["settings"].cli_args(), "--seed", str(request["seed"])]
    return shlex.join(parts)


def sample_grid(pipe, request: dict, progress=None, step_callback=None):
    """(labelled grid, Samples) of a checked request, through `pipeline.sampling.generate`."""
    from .images import labelled_grid
    from .sampling import generate

    samples = generate(pipe, batch_size=DEMO_BATCH_SIZE, progress=progress, callback_on_step_end=step_callback, **request)
    rows, names = samples.rows()
    return labelled_grid(rows, names, title=grid_title(samples.settings, request["seed"])), samples


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

    from .images import labelled_grid, model_range_to_unit, to_pil
    from .visualize import reverse_process_frames

    frames, labels, samples = reverse_process_frames(pipe, [class_id], every=1, seed=request["seed"],
                                                     settings=request["settings"])
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


def forward_examples(data_dir: str | None = None, num_classes: int = 10):
    """uint8 (classes, 28, 28): the first test image of each class from local Fashion-MNIST IDX files, or None
    (no download: the demo hides the forward process instead)."""
    from .data import DEBIAN_DIR, IDX_FILES

    folder = data_dir or os.environ.get("FASHION_MNIST_DIR") or DEBIAN_DIR
    if not all((Path(folder) / name).is_file() for name in IDX_FILES["test"]):
        return None
    from .data import load_dataset
    from .visualize import first_image_per_class

    return first_image_per_class(load_dataset(folder, split="test"), num_classes)


def read_forward_examples(path: str | os.PathLike, num_classes: int):
    """The staged forward_examples.png (images side by side) as uint8 (classes, H, W)."""
    import numpy as np
    import torch
    from PIL import Image

    array = np.asarray(Image.open(path).convert("L"))
    h = array.shape[0]
    if array.shape[1] != h * num_classes:
        raise ValueError(f"{path} must hold {num_classes} square images side by side, got size {array.shape[::-1]}")
    return torch.from_numpy(np.stack([array[:, k * h:(k + 1) * h] for k in range(num_classes)]).copy())


def _request_folder(root: Path) -> Path:
    now = time.time()
    if root.is_dir():
        for old in root.iterdir():
            try:
                if now - old.stat().st_mtime > DOWNLOAD_MAX_AGE_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


# ----------------------------------------------------------------------------------------------- the app
def build_demo(pipe, *, model_name: str | None = None, forward_images=None, data_dir: str | None = None,
               title: str = "fashion-ddpm: class-conditional diffusion on Fashion-MNIST"):
    """The gr.Blocks app for a loaded pipeline, with its queue set up (CONCURRENCY_LIMIT, MAX_QUEUE_SIZE).

    Args:
        model_name: shown in the page and in the equivalent `fashion-ddpm generate --model` command (None: shipped).
        forward_images: uint8 (classes, H, W) real images for the forward-process figure; None looks for local
            Fashion-MNIST (`data_dir`, $FASHION_MNIST_DIR, Debian's package) and hides the figure without it.

    Endpoints (gradio_client): "/generate" (classes, images per class, sampler, steps, guidance, seed) -> (grid PNG,
    [samples.png, samples.zip], info), and "/reverse_process" (same inputs) -> (GIF, strip PNG).
    """
    gr = import_gradio()
    from .visualize import forward_diffusion_figure

    lock = threading.Lock()  # belt and braces beside the queue's limit: one sampling call on the pipeline at a time
    start = defaults(pipe)
    downloads = Path(tempfile.gettempdir()) / "fashion-ddpm-demo"
    if forward_images is None:
        forward_images = forward_examples(data_dir, len(pipe.class_names))
    forward = forward_diffusion_figure(pipe, forward_images) if forward_images is not None else None

    def checked(classes, per_class, sampler, steps, guidance, seed) -> dict:
        try:
            return check_request(pipe, classes, per_class, sampler, steps, guidance, seed)
        except DemoInputError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def progress_callbacks(progress, total_images: int, steps: int):
        batches = max(1, math.ceil(total_images / DEMO_BATCH_SIZE))
        state = {"batch": 0, "images": 0}

        def on_step(p, i, t, tensors):
            progress((state["batch"] * steps + i + 1, batches * steps), desc=f"sampling: {state['images']}/{total_images} "
                     "images done", unit="steps")
            return tensors

        def on_batch(done, total):
            state["batch"] += 1
            state["images"] = done

        return on_batch, on_step

    tracker = gr.Progress()  # gradio passes this default (it finds it by type) and routes its calls to the request

    def run_grid(classes, per_class, sampler, steps, guidance, seed, progress=tracker):
        request = checked(classes, per_class, sampler, steps, guidance, seed)
        if request["settings"].guidance == 0:
            gr.Warning("Guidance 0 samples unconditionally: the classes are ignored.")
        total = request["per_label"] * len(request["labels"])
        on_batch, on_step = progress_callbacks(progress, total, request["settings"].steps)
        progress(0, desc="waiting for the model")
        with lock:
            try:
                grid, samples = sample_grid(pipe, request, progress=on_batch, step_callback=on_step)
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from None
        png, archive = write_downloads(grid, samples, _request_folder(downloads))
        count = f"{len(samples)} image{'s' if len(samples) > 1 else ''}"
        info = (f"{count} in {samples.seconds:.1f} s ({grid_title(samples.settings, request['seed'])}). The same grid from "
                f"the command line:\n\n`{cli_command(request, pipe.class_names, model_name)}`")
        return grid, [str(png), str(archive)], info

    def run_reverse(classes, per_class, sampler, steps, guidance, seed, progress=tracker):
        request = checked(classes, per_class, sampler, steps, guidance, seed)
        progress(0, desc="reverse process of one image")
        with lock:
            gif, strip = reverse_process(pipe, request["labels"][0], request, _request_folder(downloads))
        return str(gif), strip

    with gr.Blocks(title="fashion-ddpm demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {title}\n"
                    f"Model: `{model_name or 'the shipped ' + SHIPPED_MODEL_NAME}`, running on {device_text(pipe)}. Choose classes and "
                    f"settings, press **Generate**. Image *j* of class *c* uses seed `seed + 1000000 c + j`, exactly as "
                    f"`fashion-ddpm generate` does. Limits per request: {MAX_IMAGES_PER_REQUEST} images, {MAX_STEPS} "
                    f"steps, {MAX_IMAGE_STEPS} images x steps.")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                classes = gr.CheckboxGroup(start["classes"], value=start["classes"], label="Classes", show_select_all=True,
                                           elem_id="classes")
                per_class = gr.Slider(1, MAX_IMAGES_PER_CLASS, value=start["per_class"], step=1, precision=0, label="Images per class",
                                      elem_id="per-class")
                sampler = gr.Dropdown(list(_sampler_names()), value=start["sampler"], label="Sampler",
                                      info="the model's own by default", elem_id="sampler")
                steps = gr.Slider(1, min(MAX_STEPS, pipe.scheduler.config.num_train_timesteps), value=start["steps"], step=1,
                                  precision=0, label="Steps", elem_id="steps")
                guidance = gr.Slider(0, MAX_GUIDANCE, value=start["guidance"], step=0.5, label="Guidance",
                                     info="1 = none, 0 = unconditional", elem_id="guidance")
                seed = gr.Number(start["seed"], precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                grid = gr.Image(label="Samples", type="pil", format="png", interactive=False, elem_id="grid",
                                buttons=["download", "fullscreen"])
                info = gr.Markdown(label="Info", elem_id="info")
                files = gr.File(label="Download: the grid (PNG) and every image (zip)", file_count="multiple",
                                interactive=False, elem_id="downloads")
                with gr.Row(equal_height=True):
                    gif = gr.Image(label="Reverse process: image 1 of the first chosen class", type="filepath",
                                   interactive=False, scale=1, min_width=200, elem_id="reverse-gif")
                    strip = gr.Image(label="x_t from noise to image", type="pil", format="png", interactive=False, scale=3,
                                     elem_id="reverse-strip")
        with gr.Accordion("Forward process: how training noises real test images", open=False, visible=forward is not None):
            gr.Image(forward, type="pil", format="png", interactive=False, show_label=False, elem_id="forward")

        inputs = [classes, per_class, sampler, steps, guidance, seed]
        sampler.change(lambda name: gr.update(value=steps_for(pipe, name)), sampler, steps, api_visibility="private",
                       queue=False)
        button.click(run_grid, inputs, [grid, files, info], api_name="generate", concurrency_id="sampling",
                     ).success(run_reverse, inputs, [gif, strip], api_name="reverse_process", concurrency_id="sampling")
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=MAX_QUEUE_SIZE)
    return demo


def device_text(pipe) -> str:
    """How the page names where the model runs: "the CPU", or the GPU's name."""
    device = pipe.device
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return "the CPU" if device.type == "cpu" else str(device)


def _sampler_names():
    from .schedulers import SAMPLER_NAMES

    return SAMPLER_NAMES


# ----------------------------------------------------------------------------------------------- the Space
def space_model(space_dir: str | os.PathLike) -> str | None:
    """The model a Space runs: $FASHION_DDPM_MODEL, else the staged `model/` folder, else None (the shipped one)."""
    if os.environ.get("FASHION_DDPM_MODEL"):
        return os.environ["FASHION_DDPM_MODEL"]
    staged = Path(space_dir) / SPACE_MODEL_DIR
    return str(staged) if (staged / "model_index.json").is_file() else None


def space_app(space_dir: str | os.PathLike):
    """The app of `space/app.py`: the Space's model and, when staged, its forward-process examples."""
    from .models import load_pipeline

    model = space_model(space_dir)
    pipe = load_pipeline(model)
    examples = Path(space_dir) / SPACE_FORWARD_EXAMPLES
    images = read_forward_examples(examples, len(pipe.class_names)) if examples.is_file() else None
    return build_demo(pipe, model_name=None if model is None else Path(model).name, forward_images=images)


def stage_space(out_dir: str | os.PathLike, model: str | os.PathLike | None = None, hub_model_id: str | None = None,
                data_dir: str | None = None) -> Path:
    """Writes a ready-to-upload Hugging Face Space folder: space/'s app.py, requirements.txt and README.md (its YAML
    `models:` set to `hub_model_id` when given), the `pipeline` package (code only), the model in `model/` and,
    when Fashion-MNIST is here, forward_examples.png.

    Raises:
        ValueError: `out_dir` is a file or a non-empty folder, or `model` is not a local folder.
        FileNotFoundError: no space/ template (staging needs a source checkout).
    """
    from .models import check_model_folder, resolve_model

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--stage-space {out} exists and is not an empty folder; give a new folder")
    if not all((SPACE_TEMPLATE / n).is_file() for n in ("app.py", "requirements.txt", "README.md")):
        raise FileNotFoundError(f"the Space template {SPACE_TEMPLATE} (app.py, requirements.txt, README.md) is missing; "
                                "stage the Space from a source checkout of fashion-ddpm")
    source = resolve_model(model)
    if not os.path.isdir(source):
        raise ValueError(f"--model {source} is a Hub id; staging copies a local model folder (download it first)")
    index = check_model_folder(source)
    if hub_model_id is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", hub_model_id):
        raise ValueError(f"--hub-model-id {hub_model_id!r} is not a Hub id of the form user/name")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SPACE_TEMPLATE / "app.py", out / "app.py")
    shutil.copy2(SPACE_TEMPLATE / "requirements.txt", out / "requirements.txt")
    readme = (SPACE_TEMPLATE / "README.md").read_text(encoding="utf-8")
    if hub_model_id:
        readme = readme.replace("models: []", f"models:\n  - {hub_model_id}", 1)
    (out / "README.md").write_text(readme, encoding="utf-8")
    package = Path(__file__).resolve().parent
    shutil.copytree(package, out / "pipeline", symlinks=False,
                    ignore=lambda folder, names: [n for n in names if n in ("__pycache__", "pretrained") or n.endswith(".pyc")])
    shutil.copytree(source, out / SPACE_MODEL_DIR, ignore=shutil.ignore_patterns("checkpoints", "logs", "__pycache__"))
    images = forward_examples(data_dir, len(index["class_names"]))
    if images is not None:
        from PIL import Image

        Image.fromarray(images.permute(1, 0, 2).reshape(images.shape[1], -1).numpy()
                        ).save(out / SPACE_FORWARD_EXAMPLES)
    return out
