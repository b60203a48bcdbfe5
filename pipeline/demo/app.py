"""The demo's page: `build_demo` makes the Gradio app for a loaded pipeline (form, grid, downloads, reverse process,
forward process), with its queue.

Gradio is an optional extra (`pip install -e ".[demo]"`) and is imported only inside the functions that need it, so
importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..models import FAST_MODEL_NAME, SHIPPED_MODEL_NAME
from .requests import (
    DEMO_BATCH_SIZE,
    MAX_GUIDANCE,
    MAX_IMAGE_STEPS,
    MAX_IMAGES_PER_CLASS,
    MAX_IMAGES_PER_REQUEST,
    MAX_SEED,
    MAX_STEPS,
    DemoInputError,
    check_request,
    cli_command,
    defaults,
    grid_title,
    reverse_process,
    sample_grid,
    steps_for,
    style_with,
    write_downloads,
)

# One sampling job at a time: on a CPU, two at once only share the same cores (each gets slower, neither gets its
# images sooner), and the pipeline's scheduler is swapped during a call. Others wait in the queue, told their place.
CONCURRENCY_LIMIT = 1
MAX_QUEUE_SIZE = 20
DOWNLOAD_MAX_AGE_S = 3600  # request folders of downloads older than this are deleted by later requests
WARM_LINE = "Warmed up:"  # serve() prints this once its warm-up request is done (benchmarks wait for it)
# With the few-step student beside the default, which the Model choice starts on: the student once it meets its quality
# targets against the default (docs/fast.md), the default until then.
FAST_FIRST = False

GRADIO_MISSING = ("the demo needs Gradio, which the core install leaves out: pip install -e '.[demo]' "
                  "(in a checkout) or pip install 'fashion-ddpm[demo]'")


def import_gradio():
    """The gradio module, or ModuleNotFoundError(GRADIO_MISSING) saying which extra to install."""
    try:
        import gradio
    except ImportError:
        raise ModuleNotFoundError(GRADIO_MISSING) from None
    return gradio


@dataclass
class DemoModel:
    """A model the page offers: its label in the Model choice, the loaded pipeline, and how the command line names it
    (`model_name`: a --model path or Hub id, None for the shipped default; `fast`: `--fast`, the shipped student)."""

    label: str
    pipe: object
    model_name: str | None = None
    fast: bool = False


def offered_models(pipe, model_name: str | None = None, fast=None, fast_name: str | None = None,
                   fast_first: bool = FAST_FIRST) -> list[DemoModel]:
    """The page's models in the order the Model choice lists them: `pipe` alone, or with the few-step student `fast`
    (named `fast_name` on the command line, None: `--fast`), the student first when `fast_first`."""
    main = DemoModel(model_name or SHIPPED_MODEL_NAME, pipe, model_name)
    if fast is None:
        return [main]
    student = DemoModel(f"{fast_name or FAST_MODEL_NAME} (1, 2 or 4 U-Net passes)", fast, fast_name, fast=fast_name is None)
    return [student, main] if fast_first else [main, student]


def build_demo(pipe, *, model_name: str | None = None, forward_images=None, data_dir: str | None = None,
               title: str = "fashion-ddpm: class-conditional diffusion on Fashion-MNIST", fast=None,
               fast_name: str | None = None, fast_first: bool = FAST_FIRST):
    """The gr.Blocks app for a loaded pipeline (and optionally its few-step student), with its queue set up
    (CONCURRENCY_LIMIT, MAX_QUEUE_SIZE).

    Args:
        model_name: shown in the page and in the equivalent `fashion-ddpm generate --model` command (None: shipped).
        forward_images: uint8 (classes, H, W) real images for the forward-process figure; None looks for local
            Fashion-MNIST (`data_dir`, $FASHION_MNIST_DIR, Debian's package) and hides the figure without it.
        fast: a few-step student offered beside `pipe` in a Model choice (`fast_name`: its --model name on the
            command line, None: `--fast`); `fast_first` lists it first and starts the page on it.

    Endpoints (gradio_client): "/generate" (classes, images per class, sampler, steps, guidance, seed[, style][, model])
    -> (grid PNG, [samples.png, samples.zip], info), and "/reverse_process" (same inputs) -> (GIF, strip PNG). A style
    model's page has the style input; a page of two models has both (the style hidden when neither takes one) and the
    model's label last.
    """
    gr = import_gradio()
    from ..visualize import forward_diffusion_figure

    models = offered_models(pipe, model_name, fast, fast_name, fast_first)
    start = defaults(models[0].pipe)
    if forward_images is None:
        forward_images = forward_examples(data_dir, len(pipe.class_names))
    forward = forward_diffusion_figure(pipe, forward_images) if forward_images is not None else None
    run_grid, run_reverse = _sampling_handlers(gr, models)

    with gr.Blocks(title="fashion-ddpm demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_header_text(title, models))
        with gr.Row():
            form = _request_form(gr, models, start)
            results = _results_panel(gr)
        with gr.Accordion("Forward process: how training noises real test images", open=False, visible=forward is not None):
            gr.Image(forward, type="pil", format="png", interactive=False, show_label=False, elem_id="forward")
        _wire_sampling(gr, models, form, results, run_grid, run_reverse)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=MAX_QUEUE_SIZE)
    # the form's starting values, in the endpoints' input order: serve() sends them once before the first visitor
    demo.default_request = [start[k] for k in ("classes", "per_class", "sampler", "steps", "guidance", "seed")] + (
        [""] if form.style is not None else []) + ([models[0].label] if form.model is not None else [])
    return demo


@dataclass
class RequestForm:
    """The form's components; `inputs` are the endpoints' inputs, in order (the Style box only on a style model)."""

    classes: object
    per_class: object
    sampler: object
    steps: object
    guidance: object
    seed: object
    style: object | None
    model: object | None
    button: object

    @property
    def inputs(self) -> list:
        fields = [self.classes, self.per_class, self.sampler, self.steps, self.guidance, self.seed]
        return fields + [x for x in (self.style, self.model) if x is not None]


@dataclass
class ResultsPanel:
    """Where a request's answers go: the grid, its info and downloads, and the reverse process of one image."""

    grid: object
    info: object
    files: object
    gif: object
    strip: object


def _header_text(title: str, models: list[DemoModel]) -> str:
    if len(models) == 1:
        named = f"Model: `{models[0].model_name or 'the shipped ' + SHIPPED_MODEL_NAME}`"
    else:
        named = "Models: " + " and ".join(f"`{m.model_name or (FAST_MODEL_NAME if m.fast else SHIPPED_MODEL_NAME)}`"
                                          + (" (few U-Net passes)" if m.pipe.is_distilled else "") for m in models)
    return (f"# {title}\n"
            f"{named}, running on {device_text(models[0].pipe)}. Choose classes and "
            f"settings, press **Generate**. Image *j* of class *c* uses seed `seed + 1000000 c + j`, exactly as "
            f"`fashion-ddpm generate` does. Limits per request: {MAX_IMAGES_PER_REQUEST} images, {MAX_STEPS} "
            f"steps, {MAX_IMAGE_STEPS} images x steps.")


def _request_form(gr, models: list[DemoModel], start: dict) -> RequestForm:
    """The left column: (the model), classes, images per class, sampler, steps, guidance, seed, (style), and the
    Generate button."""
    pipe = models[0].pipe
    with gr.Column(scale=1, min_width=320):
        model = None
        if len(models) > 1:
            model = gr.Radio([m.label for m in models], value=models[0].label, label="Model", elem_id="model",
                             info="the few-step student samples in one U-Net pass per step")
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
        styled = next((m.pipe for m in models if m.pipe.style_attributes), None)
        style = _style_box(gr, styled or pipe, visible=styled is not None) if styled or model else None
        button = gr.Button("Generate", variant="primary", elem_id="generate")
    return RequestForm(classes, per_class, sampler, steps, guidance, seed, style, model, button)


def _style_box(gr, pipe, visible: bool = True):
    """A style model's Style box (descriptor words or attribute=percentile pairs), with a slider per attribute that
    writes into it. Hidden (`visible`) on a page of two models neither of which takes a style."""
    if not pipe.style_attributes:
        return gr.Textbox("", visible=False, elem_id="style")
    descriptors = pipe.condition_encoder.descriptors()
    words = ", ".join(sorted(descriptors))
    style = gr.Textbox("", label="Style", placeholder="e.g. wide dark, or width=0.9 pattern=0.1",
                       info=f"words: {words}; or attribute=percentile for {', '.join(pipe.style_attributes)}"
                            " (percentiles within the class); empty = free", elem_id="style", visible=visible)
    # the sliders write into the Style box (the one input a request has): moving one sets its
    # attribute, its "free" button removes it
    with gr.Accordion("Style sliders (percentile within the class)", open=False):
        for attribute in pipe.style_attributes:
            with gr.Row(equal_height=True):
                slider = gr.Slider(0, 1, value=0.5, step=0.05, label=attribute, scale=4,
                                   elem_id=f"style-{attribute}")
                free = gr.Button("free", size="sm", scale=1, min_width=60, elem_id=f"style-{attribute}-free")
            slider.release(lambda text, v, a=attribute: style_with(text, a, v, descriptors), [style, slider],
                           style, api_visibility="private", queue=False)
            free.click(lambda text, a=attribute: style_with(text, a, None, descriptors), style, style,
                       api_visibility="private", queue=False)
    return style


def _results_panel(gr) -> ResultsPanel:
    """The right column: the grid, its info and downloads, then the reverse process (GIF and strip)."""
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
    return ResultsPanel(grid, info, files, gif, strip)


def _wire_sampling(gr, models: list[DemoModel], form: RequestForm, results: ResultsPanel, run_grid, run_reverse):
    """A sampler change resets the steps to its default, a model change the sampler, steps and guidance to that
    model's; Generate runs "/generate", then "/reverse_process"."""
    by_label = {m.label: m.pipe for m in models}

    def chosen(label):
        return by_label.get(label, models[0].pipe)

    form.sampler.change(lambda name, label=None: gr.update(value=steps_for(chosen(label), name)),
                        [form.sampler] + ([form.model] if form.model is not None else []), form.steps,
                        api_visibility="private", queue=False)
    if form.model is not None:
        def model_defaults(label):
            start = defaults(chosen(label))
            return (gr.update(value=start["sampler"]), gr.update(value=start["steps"]),
                    gr.update(value=start["guidance"]))

        form.model.change(model_defaults, form.model, [form.sampler, form.steps, form.guidance],
                          api_visibility="private", queue=False)
    form.button.click(run_grid, form.inputs, [results.grid, results.files, results.info], api_name="generate",
                      concurrency_id="sampling",
                      ).success(run_reverse, form.inputs, [results.gif, results.strip], api_name="reverse_process",
                                concurrency_id="sampling")


def _sampling_handlers(gr, models: list[DemoModel]):
    """The two endpoints' functions, (run_grid, run_reverse): check the request, sample under one lock, and answer."""
    lock = threading.Lock()  # belt and braces beside the queue's limit: one sampling call on the pipeline at a time
    downloads = Path(tempfile.gettempdir()) / "fashion-ddpm-demo"
    tracker = gr.Progress()  # gradio passes this default (it finds it by type) and routes its calls to the request

    by_label = {m.label: m for m in models}

    def checked(classes, per_class, sampler, steps, guidance, seed, style, label) -> tuple[DemoModel, dict]:
        try:
            if label is not None and label not in by_label:
                raise DemoInputError(f"Unknown model {label!r}; choose one of {', '.join(by_label)}.")
            model = by_label.get(label, models[0])
            return model, check_request(model.pipe, classes, per_class, sampler, steps, guidance, seed, style)
        except DemoInputError as e:
            raise gr.Error(str(e), print_exception=False) from None

    # `style` is the Style box of a style model and `label` the Model choice of a page of two; a page without them
    # has no such input (their defaults: no style, the one model)
    def run_grid(classes, per_class, sampler, steps, guidance, seed, style="", label=None, progress=tracker):
        model, request = checked(classes, per_class, sampler, steps, guidance, seed, style, label)
        pipe = model.pipe
        if request["settings"].guidance == 0:
            gr.Warning("Guidance 0 samples unconditionally: the classes are ignored.")
        total = request["per_label"] * len(request["labels"])
        on_batch, on_step = _progress_callbacks(progress, total, request["settings"].steps)
        progress(0, desc="waiting for the model")
        with lock:
            try:
                grid, samples = sample_grid(pipe, request, progress=on_batch, step_callback=on_step)
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from None
        png, archive = write_downloads(grid, samples, _request_folder(downloads))
        count = f"{len(samples)} image{'s' if len(samples) > 1 else ''}"
        info = (f"{count} in {samples.seconds:.1f} s ({grid_title(samples.settings, request['seed'], samples.style)}). "
                f"The same grid from "
                f"the command line:\n\n`{cli_command(request, pipe.class_names, model.model_name, fast=model.fast)}`")
        return grid, [str(png), str(archive)], info

    def run_reverse(classes, per_class, sampler, steps, guidance, seed, style="", label=None, progress=tracker):
        model, request = checked(classes, per_class, sampler, steps, guidance, seed, style, label)
        progress(0, desc="reverse process of one image")
        with lock:
            gif, strip = reverse_process(model.pipe, request["labels"][0], request, _request_folder(downloads))
        return str(gif), strip

    return run_grid, run_reverse


def _progress_callbacks(progress, total_images: int, steps: int):
    """(on_batch, on_step) for `sample_grid`: they report the steps done over all batches to gradio's `progress`."""
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


def serve(app, **launch_kwargs):
    """Launches a `build_demo` page and sends it its default request once, through its own API, before serving
    visitors: the first request in a process pays for first calls in torch, PIL and Gradio, which would otherwise
    make the first visitor's click the slowest (benchmarks/demo_latency.py times the first click)."""
    app.launch(prevent_thread_lock=True, **launch_kwargs)
    began = time.perf_counter()
    try:
        from gradio_client import Client

        client = Client(app.local_url, verbose=False)
        for endpoint in ("/generate", "/reverse_process"):
            client.predict(*app.default_request, api_name=endpoint)
        print(f"{WARM_LINE} the default request took {time.perf_counter() - began:.1f} s", flush=True)
    except Exception as e:  # the page still serves; a broken request shows itself to the visitor as usual
        print(f"{WARM_LINE} the warm-up request failed: {e}", flush=True)
    app.block_thread()


def device_text(pipe) -> str:
    """How the page names where the model runs: "the CPU", or the GPU's name."""
    device = pipe.device
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return "the CPU" if device.type == "cpu" else str(device)


def _sampler_names():
    from ..schedulers import SAMPLER_NAMES

    return SAMPLER_NAMES


def forward_examples(data_dir: str | None = None, num_classes: int = 10):
    """uint8 (classes, 28, 28): the first test image of each class from local Fashion-MNIST IDX files, or None
    (no download: the demo hides the forward process instead)."""
    from ..data import DEBIAN_DIR, IDX_FILES

    folder = data_dir or os.environ.get("FASHION_MNIST_DIR") or DEBIAN_DIR
    if not all((Path(folder) / name).is_file() for name in IDX_FILES["test"]):
        return None
    from ..data import load_dataset
    from ..visualize import first_image_per_class

    return first_image_per_class(load_dataset(folder, split="test"), num_classes)


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
