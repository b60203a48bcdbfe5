"""Finding and loading a saved pipeline, with one check that turns every broken model into a one-line error.

`load_pipeline(model)` accepts a saved folder or a Hub id; None means the shipped model. Before loading, a local folder
is checked file by file (model_index.json, unet/, scheduler/, weights, class names against the class embedding), so a
typo, a half-copied folder or a truncated safetensors file gives `ModelError("...")` naming the path and what is
expected, never a 50-line traceback. Every command and the demo load through here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_MODEL_NAME = "fashion-ddpm-gpu"  # the better model by measurement; pretrained/fashion-ddpm-cpu is the 4x faster one
# The shipped model lives in the repository's pretrained/ folder; `pip install .` also copies it into the package
# (pipeline/pretrained is a symlink to ../pretrained in the source tree), so both layouts find it.
SHIPPED_MODEL_CANDIDATES = (PACKAGE_DIR / "pretrained" / SHIPPED_MODEL_NAME,
                            PACKAGE_DIR.parent / "pretrained" / SHIPPED_MODEL_NAME)
FAST_MODEL_NAME = "fashion-ddpm-cpu-fast"  # the shipped few-step student (`--fast`)
# Model folders this project shipped and then retired: folder name -> what replaces it. A path to one that is gone
# stops in one line naming its replacement (not a Hub lookup: "pretrained/NAME" is also a valid Hub id).
RETIRED_MODELS: dict[str, str] = {}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# what loading a Hub model downloads: its components (a guide U-Net too), never its code files
MODEL_FILES = ["model_index.json", "unet/*", "scheduler/*", "condition_encoder/*", "guide_unet/*"]


class ModelError(ValueError):
    """A model folder or id that cannot be loaded; the message says which and what is expected."""


def default_model() -> Path:
    """The shipped model folder ($FASHION_DDPM_MODEL overrides it)."""
    if os.environ.get("FASHION_DDPM_MODEL"):
        return Path(os.environ["FASHION_DDPM_MODEL"])
    for candidate in SHIPPED_MODEL_CANDIDATES:
        if (candidate / "model_index.json").is_file():
            return candidate
    raise ModelError(f"the shipped model {SHIPPED_MODEL_NAME} was not found (looked in "
                     f"{', '.join(str(c) for c in SHIPPED_MODEL_CANDIDATES)}); pass --model DIR_OR_HUB_ID or set "
                     "FASHION_DDPM_MODEL")


DEFAULT_MODEL = SHIPPED_MODEL_CANDIDATES[1]  # where the repository keeps it (documentation, benchmarks)


def fast_model() -> Path:
    """The shipped few-step student's folder (`--fast`): installed beside the package, else in the repository."""
    installed = PACKAGE_DIR / "pretrained" / FAST_MODEL_NAME
    return installed if (installed / "model_index.json").is_file() else PACKAGE_DIR.parent / "pretrained" / FAST_MODEL_NAME


def _looks_like_path(model: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if model.startswith((".", "/", "~")) or model.endswith(("/", os.sep)) or os.path.exists(model):
        return True
    try:
        validate_repo_id(model)
    except HFValidationError:
        return True
    return False


def check_model_folder(folder: str | os.PathLike) -> dict:
    """Checks a saved pipeline folder without loading weights; returns its model_index.json.

    Raises:
        ModelError: naming the missing or broken file and what a saved fashion-ddpm pipeline holds.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"model {folder} is not a folder")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelError(f"{folder} is not a saved pipeline folder (no model_index.json in it)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        assert isinstance(index, dict)
    except (ValueError, AssertionError, UnicodeDecodeError):
        raise ModelError(f"{index_path} is not a valid JSON object; re-export the model (save_pretrained)") from None
    for component in ("unet", "scheduler"):
        if component not in index:
            raise ModelError(f"{index_path} lists no {component!r} component; is this a fashion-ddpm pipeline?")
    unet_dir = folder / "unet"
    try:
        unet_config = json.loads((unet_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder} has no unet/config.json (the U-Net folder is missing or incomplete)") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{unet_dir / 'config.json'} is not valid JSON") from None
    weights = next((unet_dir / n for n in WEIGHT_FILES if (unet_dir / n).is_file()), None)
    if weights is None:
        raise ModelError(f"{folder} has no U-Net weights: expected {unet_dir / WEIGHT_FILES[0]}")
    if weights.suffix == ".safetensors":
        _check_safetensors(weights)
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        raise ModelError(f"{folder} has no scheduler/scheduler_config.json")
    embeds_file = "unet/config.json"
    embeds = unet_config.get("num_class_embeds")
    if index.get("condition_encoder") and index["condition_encoder"][0]:  # a style model: the encoder holds the classes
        embeds_file = "condition_encoder/config.json"
        try:
            embeds = json.loads((folder / embeds_file).read_text(encoding="utf-8")).get("num_class_embeds")
        except (OSError, ValueError):
            raise ModelError(f"{folder} lists a condition_encoder but has no valid {embeds_file}") from None
    names = index_class_names(index, index_path)
    if embeds != len(names) + 1:
        raise ModelError(f"{folder}: {len(names)} class names in model_index.json need num_class_embeds = "
                         f"{len(names) + 1} (one per class + the null class) in {embeds_file}, found {embeds}")
    return index


def index_class_names(index: dict, index_path: str | os.PathLike = "model_index.json") -> list[str]:
    """The class names of a model_index.json: its `id2label` mapping, or the `class_names` list of older folders."""
    from .pipeline_fashion_ddpm import label_names

    id2label, class_names = index.get("id2label"), index.get("class_names")
    if not isinstance(id2label, dict) and not (isinstance(class_names, list) and class_names):
        raise ModelError(f"{index_path} has no id2label mapping of class ids to names")
    try:
        return label_names(id2label if isinstance(id2label, dict) else None, class_names)
    except ValueError as e:
        raise ModelError(f"{index_path}: {e}") from None


def _check_safetensors(path: Path):
    """Reads the header and compares the byte size it promises with the file (catches truncated copies)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 2 <= header_len <= size - 8:
                raise ValueError
            header = json.loads(f.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        raise ModelError(f"{path} is not a valid safetensors file (corrupt header); re-export or re-download it") from None
    if 8 + header_len + end != size:
        raise ModelError(f"{path} is truncated or corrupt: its header describes {8 + header_len + end:,} bytes, "
                         f"the file has {size:,}; re-export or re-download it")


def resolve_model(model: str | os.PathLike | None) -> str:
    """The folder or Hub id to load: checked when local, the shipped model when None."""
    if model is None:
        folder = default_model()
        check_model_folder(folder)
        return str(folder)
    model = str(model)
    if os.path.isdir(model):
        check_model_folder(model)
        return model
    if Path(model).name in RETIRED_MODELS:
        raise ModelError(f"{model} is no longer shipped: use {RETIRED_MODELS[Path(model).name]}")
    if _looks_like_path(model):
        raise ModelError(f"model folder {model} does not exist (and it is not a valid Hub id user/name); "
                         "pass --model DIR or a Hub id")
    return model  # a Hub id: loading says whether it exists


def load_pipeline(model: str | os.PathLike | None = None, sampler: str | None = None, device: str | None = None):
    """Loads a saved fashion-ddpm pipeline (folder or Hub id; None = the shipped model), optionally with another
    named sampler and on `device`.

    Raises:
        ModelError: the model cannot be found or is broken (one line naming it).
        ValueError: unknown sampler or unavailable device.
    """
    if sampler is not None:
        from .schedulers import check_sampler_name

        check_sampler_name(sampler)
    device = check_device(device)
    source = resolve_model(model)
    folder = source if os.path.isdir(source) else download_model(source)
    from .pipeline_fashion_ddpm import FashionDDPMPipeline

    try:
        pipe = FashionDDPMPipeline.from_pretrained(folder)
    except OSError as e:
        raise ModelError(f"could not load the model in {source}: {_first_line(e)}") from None
    except (ValueError, RuntimeError, TypeError, KeyError) as e:
        raise ModelError(f"the model {source} is broken: {type(e).__name__}: {_first_line(e)}") from None
    pipe.set_progress_bar_config(disable=True)
    if sampler is not None:
        from .schedulers import use_sampler

        use_sampler(pipe, sampler)
    return pipe.to(device) if device else pipe


def download_model(repo_id: str) -> str:
    """A Hub model's files in the local cache (downloaded when missing; with HF_HUB_OFFLINE=1 the cache alone), checked
    as a folder. This package's classes then load that folder, so none of the repo's code files is imported."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, allow_patterns=MODEL_FILES)
    except Exception as e:  # not found, private, offline without a cached copy, no network: one line, whatever it was
        raise ModelError(f"no folder {repo_id!r} here, and the Hub model {repo_id!r} could not be loaded "
                         f"({type(e).__name__}: {_first_line(e)}); check the id, the token, the network or "
                         "HF_HUB_OFFLINE") from None
    check_model_folder(folder)
    return folder


def check_device(device: str | None) -> str | None:
    """None (the default device) or a torch device string that exists on this machine."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a torch device; use cpu, cuda, cuda:1, mps") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


GUIDE_SCHEDULE_KEYS = ("num_train_timesteps", "beta_schedule", "prediction_type")  # what a guide must share


def with_guide(pipe, guide, default_guide_scale: float | None = None):
    """`pipe` with `guide`'s U-Net as its autoguidance guide (`guide_unet`, saved as a component of the folder), so that
    `guide_scale` > 0 guides it away from that worse model (Karras et al. 2024). `guide`: a loaded class-only pipeline
    (or a folder or Hub id) with the same classes and noise schedule; `default_guide_scale` is saved as the default.

    Raises:
        ValueError: a guide of other classes, another noise schedule or prediction, or with a condition encoder.
    """
    from .pipeline_fashion_ddpm import FashionDDPMPipeline

    if pipe.is_distilled:
        raise ValueError("a distilled student takes no guide (its guidance was distilled into it); guide its teacher")
    guide = load_pipeline(guide) if isinstance(guide, (str, os.PathLike)) else guide
    if guide.is_distilled or getattr(guide, "condition_encoder", None) is not None:
        raise ValueError("a guide must be a class-only model (its U-Net takes class ids, not a condition encoder)")
    if list(guide.class_names) != list(pipe.class_names):
        raise ValueError(f"the guide has classes {list(guide.class_names)}, the model {list(pipe.class_names)}")
    for key in GUIDE_SCHEDULE_KEYS:
        if guide.scheduler.config[key] != pipe.scheduler.config[key]:
            raise ValueError(f"the guide has {key} {guide.scheduler.config[key]!r}, the model "
                             f"{pipe.scheduler.config[key]!r}; a guide must denoise on the same noise schedule")
    config = pipe.config
    guided = FashionDDPMPipeline(pipe.unet, pipe.scheduler, default_guidance_scale=config.default_guidance_scale,
                                 default_num_inference_steps=config.get("default_num_inference_steps"),
                                 default_guidance_interval=config.get("default_guidance_interval"),
                                 condition_encoder=getattr(pipe, "condition_encoder", None),
                                 default_timesteps=config.get("default_timesteps"), id2label=config.id2label,
                                 default_style_guidance_scale=config.get("default_style_guidance_scale"),
                                 guide_unet=guide.unet.to(pipe.unet.device), default_guide_scale=default_guide_scale)
    guided.set_progress_bar_config(disable=True)
    return guided
