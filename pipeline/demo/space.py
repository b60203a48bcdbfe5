"""The demo as a Hugging Face Space: `stage_space` writes the folder a Gradio Space needs, `space_app` is the app its
`app.py` serves.

The Space's own files (`app.py`, `requirements.txt`, `README.md` with the Space's YAML) are package data in
`space_template/`, so staging works from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .app import build_demo, forward_examples

SPACE_TEMPLATE = Path(__file__).resolve().parent / "space_template"  # app.py, requirements.txt, README.md
SPACE_TEMPLATE_FILES = ("app.py", "requirements.txt", "README.md")
SPACE_FORWARD_EXAMPLES = "forward_examples.png"  # one real test image per class, side by side (staged Space)
SPACE_MODEL_DIR = "model"
SPACE_FAST_DIR = "fast"  # the few-step student offered beside the model, when staged
PACKAGE = Path(__file__).resolve().parent.parent  # the `pipeline` package, copied into the Space (code only)
NOT_STAGED = ("__pycache__", "pretrained", SPACE_TEMPLATE.name)  # the model goes to model/; the template is the Space


def space_model(space_dir: str | os.PathLike) -> str | None:
    """The model a Space runs: $FASHION_DDPM_MODEL, else the staged `model/` folder, else None (the shipped one)."""
    if os.environ.get("FASHION_DDPM_MODEL"):
        return os.environ["FASHION_DDPM_MODEL"]
    staged = Path(space_dir) / SPACE_MODEL_DIR
    return str(staged) if (staged / "model_index.json").is_file() else None


def space_app(space_dir: str | os.PathLike):
    """The app of the Space's `app.py` (in `space_dir`): the Space's model, its few-step student when staged in
    `fast/` (and no $FASHION_DDPM_MODEL names another model), and when staged its forward-process examples."""
    from ..models import load_pipeline

    model = space_model(space_dir)
    pipe = load_pipeline(model)
    staged_fast = Path(space_dir) / SPACE_FAST_DIR
    fast = None
    if not os.environ.get("FASHION_DDPM_MODEL") and (staged_fast / "model_index.json").is_file():
        fast = load_pipeline(staged_fast)
    examples = Path(space_dir) / SPACE_FORWARD_EXAMPLES
    images = read_forward_examples(examples, len(pipe.class_names)) if examples.is_file() else None
    return build_demo(pipe, model_name=None if model is None else Path(model).name, forward_images=images, fast=fast,
                      fast_name=None if fast is None else staged_fast.name)


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


def stage_space(out_dir: str | os.PathLike, model: str | os.PathLike | None = None, hub_model_id: str | None = None,
                data_dir: str | None = None, fast: str | os.PathLike | None = None,
                hub_fast_model_id: str | None = None) -> Path:
    """Writes a ready-to-upload Hugging Face Space folder: the template's app.py, requirements.txt and README.md (its
    YAML `models:` listing `hub_model_id` and `hub_fast_model_id` when given), the `pipeline` package (code only), the
    model in `model/`, the few-step student `fast` (a local folder) in `fast/` and, when Fashion-MNIST is here,
    forward_examples.png.

    Raises:
        ValueError: `out_dir` is a file or a non-empty folder, `model` or `fast` is not a local folder, or `fast` is
            not a few-step student.
        FileNotFoundError: the template files are missing from the installed package.
    """
    from ..hub import check_repo_id
    from ..models import check_model_folder, index_class_names, resolve_model

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--stage-space {out} exists and is not an empty folder; give a new folder")
    if not all((SPACE_TEMPLATE / n).is_file() for n in SPACE_TEMPLATE_FILES):
        raise FileNotFoundError(f"the Space template {SPACE_TEMPLATE} ({', '.join(SPACE_TEMPLATE_FILES)}) is missing; "
                                "reinstall fashion-ddpm")
    source = resolve_model(model)
    if not os.path.isdir(source):
        raise ValueError(f"--model {source} is a Hub id; staging copies a local model folder (download it first)")
    index = check_model_folder(source)
    fast_source = None if fast is None else resolve_model(fast)
    if fast_source is not None:
        if not os.path.isdir(fast_source):
            raise ValueError(f"the student {fast_source} is a Hub id; staging copies a local model folder")
        check_model_folder(fast_source)
        from ..pipeline_fashion_ddpm import saved_student

        if not saved_student(fast_source):
            raise ValueError(f"{fast_source} is not a few-step student (the demo offers it as the fast model)")
    for value, flag in ((hub_model_id, "--hub-model-id"), (hub_fast_model_id, "--hub-fast-model-id")):
        if value is not None:
            check_repo_id(value, flag)
    from huggingface_hub import SpaceCard

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SPACE_TEMPLATE / "app.py", out / "app.py")
    shutil.copy2(SPACE_TEMPLATE / "requirements.txt", out / "requirements.txt")
    card = SpaceCard.load(SPACE_TEMPLATE / "README.md")
    card.data.models = [m for m in (hub_model_id, hub_fast_model_id) if m]  # links the Space and the models on the Hub
    card.save(out / "README.md")
    shutil.copytree(PACKAGE, out / "pipeline", symlinks=False,
                    ignore=lambda folder, names: [n for n in names if n in NOT_STAGED or n.endswith(".pyc")])
    for folder, name in ((source, SPACE_MODEL_DIR), (fast_source, SPACE_FAST_DIR)):
        if folder is not None:
            shutil.copytree(folder, out / name, ignore=shutil.ignore_patterns("checkpoints", "logs", "__pycache__"))
    images = forward_examples(data_dir, len(index_class_names(index)))
    if images is not None:
        from PIL import Image

        Image.fromarray(images.permute(1, 0, 2).reshape(images.shape[1], -1).numpy()
                        ).save(out / SPACE_FORWARD_EXAMPLES)
    return out
