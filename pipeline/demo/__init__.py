"""The web demo: a Gradio app that samples the model (on the CPU, or --device), and the folder a Hugging Face Space needs.

Pick classes, images per class, sampler, steps, guidance and seed; Generate shows the labelled grid (the same picture
`fashion-ddpm generate` writes for the same settings: images come only from `pipeline.sampling.generate`), a PNG and a
zip of the single images to download, then the reverse process of one image as a GIF and a strip of x_t. The forward
process of real test images is shown when Fashion-MNIST is on this machine (or staged with the Space).

    requests.py        limits, checks, a request as `generate` arguments, grid, downloads, reverse process, command line
    app.py             build_demo: the Gradio page and its queue (Gradio imported only inside functions)
    space.py           stage_space / space_app: the Hugging Face Space folder and its app
    space_template/    the Space's app.py, requirements.txt and README.md (package data: staging works from a wheel)

Importing this package costs nothing: its public names come from their submodules on first use (PEP 562), and none
of those imports torch or Gradio at import. Command line: `fashion-ddpm demo` (`pipeline/cli/demo.py`).
"""

from __future__ import annotations

import importlib

# submodule -> the public names it defines
_EXPORTS = {
    "requests": ("MAX_IMAGES_PER_CLASS", "MAX_IMAGES_PER_REQUEST", "MAX_STEPS", "MAX_IMAGE_STEPS", "MAX_GUIDANCE", "MAX_SEED",
                 "DEFAULT_IMAGES_PER_CLASS", "DEMO_BATCH_SIZE", "REVERSE_STRIP_FRAMES", "GIF_SCALE", "GIF_FRAME_MS",
                 "GIF_LAST_FRAME_MS", "DemoInputError", "check_request", "sampler_hint", "defaults", "steps_for",
                 "grid_title", "style_with", "cli_command", "sample_grid", "image_file_names", "write_downloads", "reverse_process"),
    "app": ("CONCURRENCY_LIMIT", "MAX_QUEUE_SIZE", "DOWNLOAD_MAX_AGE_S", "WARM_LINE", "GRADIO_MISSING", "FAST_FIRST",
            "DemoModel", "offered_models", "import_gradio", "build_demo", "serve", "device_text", "forward_examples"),
    "space": ("SPACE_TEMPLATE", "SPACE_FORWARD_EXAMPLES", "SPACE_MODEL_DIR", "SPACE_FAST_DIR", "space_model", "space_app",
              "read_forward_examples", "stage_space"),
}
_LAZY = {name: f"{__name__}.{module}" for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
