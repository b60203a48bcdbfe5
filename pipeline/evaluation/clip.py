"""CLIP scoring of generated images: prompt similarities, a quality score, zero-shot agreement, and best-of-N.

For every image and its intended class `c` (prompt name `n`, e.g. "sneaker"), CLIP embeds the image and

* three *quality prompts* built from templates, by default "a good photo of a {n}", "a clear photo of a {n}" and
  "a blurry photo of a {n}" (roles: positive, positive, negative);
  - `sim_*`: cosine similarity of the image embedding with each prompt embedding, in [-1, 1];
  - `p_*`: softmax over the three prompts of `logit_scale * cosine` (CLIP's own temperature, 100 for OpenAI CLIP);
  - **quality = p_good + p_clear - p_blurry**. The three probabilities sum to 1, so this equals 1 - 2 * p_blurry and
    lies in [-1, 1]: +1 when CLIP is sure the image is a good/clear rather than a blurry picture *of the intended
    class*, -1 when it is sure it is blurry. It ranks images of one class; compare across classes with care.
* the ten *class prompts* "a photo of a {n}" for every class: `zs_guess` is CLIP's zero-shot class (argmax over
  `logit_scale * cosine`), `zs_correct` whether it equals the intended class, `zs_prob` CLIP's probability of the
  intended class.

Images (PIL, B×1×H×W tensors or B×H×W×1 arrays in [0, 1], as the pipeline returns them) are converted to 3-channel
RGB PIL images (grey copied to all channels) and `CLIPProcessor` does the resize, centre crop and normalisation.

Use from Python:

    >>> scorer = load_clip()                    # pretrained/fashion-clip; or "openai/clip-vit-base-patch32", a folder
    >>> scores = scorer.score(images, labels, pipe.class_names)     # ClipScores
    >>> result = best_of_n(pipe, scorer, pool=15, keep=3)           # pipeline.evaluation.best_of_n

or from the command line: `fashion-ddpm evaluate-clip ...` and `fashion-ddpm best-of-n ...`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..checks import check_int
from ..images import labelled_grid, to_rgb_pil
from ..io import atomic_path, atomic_save_image, atomic_write_json, atomic_write_text
from ..sampling import generate

OPENAI_CLIP_MODEL = "openai/clip-vit-base-patch32"  # the general-domain CLIP, for users who are online
SHIPPED_CLIP_NAME = "fashion-clip"  # pretrained/fashion-clip: the Fashion-MNIST CLIP trained here (scripts/train_clip.py)
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# `pip install .` copies pretrained/ into the package (pipeline/pretrained is a symlink to it in the source tree)
SHIPPED_CLIP_CANDIDATES = (_PACKAGE_DIR / "pretrained" / SHIPPED_CLIP_NAME, _PACKAGE_DIR.parent / "pretrained" / SHIPPED_CLIP_NAME)
DEFAULT_TEMPLATES = ("a good photo of a {}", "a clear photo of a {}", "a blurry photo of a {}")
TEMPLATE_ROLES = ("good", "clear", "blurry")  # quality = p[0] + p[1] - p[2]
ZERO_SHOT_TEMPLATE = "a photo of a {}"

# Natural-language names of the Fashion-MNIST classes for prompts ("a photo of a T-shirt/top" reads badly).
PROMPT_NAMES = {
    "T-shirt/top": "t-shirt",
    "Trouser": "pair of trousers",
    "Pullover": "pullover",
    "Dress": "dress",
    "Coat": "coat",
    "Sandal": "sandal",
    "Shirt": "shirt",
    "Sneaker": "sneaker",
    "Bag": "bag",
    "Ankle boot": "ankle boot",
}

HOW_TO_GET_CLIP = (
    "--clip-model needs a CLIPModel: a Hub id such as openai/clip-vit-base-patch32 (downloaded once, then cached), "
    "or a local folder written by CLIPModel.save_pretrained + CLIPProcessor.save_pretrained "
    "(config.json with model_type 'clip', the weights, tokenizer and preprocessor files)"
)


class ClipModelError(ValueError):
    """The CLIP model or processor could not be loaded; the message names the path or id and what is needed."""


def default_clip_model() -> str:
    """The shipped Fashion-MNIST CLIP's folder: what evaluate-clip and best-of-n use without --clip-model."""
    for candidate in SHIPPED_CLIP_CANDIDATES:
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise ClipModelError(f"the shipped CLIP {SHIPPED_CLIP_NAME} was not found (looked in "
                         f"{', '.join(str(c) for c in SHIPPED_CLIP_CANDIDATES)}); {HOW_TO_GET_CLIP}")


def prompt_name(class_name: str) -> str:
    """The name used in prompts: a readable form for the Fashion-MNIST classes, else the name in lower case."""
    return PROMPT_NAMES.get(class_name, class_name.lower())


def _as_labels(labels, n_images: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1)
    if labels.size == 0:
        labels = labels.astype(np.int64)
    if len(labels) != n_images:
        raise ValueError(f"got {n_images} images but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be class ids in 0..{n_classes - 1}, got {sorted(set(labels.tolist()))}")
    return labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------------- scores
@dataclass
class ClipScores:
    """Per-image CLIP scores; row i belongs to `images[i]` with intended class `labels[i]`."""

    labels: np.ndarray          # (N,) intended class ids
    similarities: np.ndarray    # (N, 3) cosine similarity to the quality prompts (good, clear, blurry)
    probabilities: np.ndarray   # (N, 3) softmax over the quality prompts; rows sum to 1
    quality: np.ndarray         # (N,) p_good + p_clear - p_blurry, in [-1, 1]
    zero_shot_probs: np.ndarray  # (N, C) softmax over the class prompts
    class_names: list[str]
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    zero_shot_template: str = ZERO_SHOT_TEMPLATE
    logit_scale: float = 100.0
    clip_model: str = ""
    images: list[Image.Image] = field(default_factory=list, repr=False)  # the scored images (grey), for grids
    paths: dict = field(default_factory=dict, repr=False)  # files written by evaluate_pipeline(out_dir=...)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def zero_shot_guess(self) -> np.ndarray:
        return self.zero_shot_probs.argmax(axis=1) if len(self) else np.zeros(0, dtype=np.int64)

    @property
    def zero_shot_correct(self) -> np.ndarray:
        return self.zero_shot_guess == self.labels

    def subset(self, index) -> ClipScores:
        index = np.asarray(index, dtype=np.int64)
        return ClipScores(self.labels[index], self.similarities[index], self.probabilities[index], self.quality[index],
                          self.zero_shot_probs[index], self.class_names, self.templates, self.zero_shot_template,
                          self.logit_scale, self.clip_model, [self.images[i] for i in index] if self.images else [])

    def rows(self) -> list[dict]:
        """One dict per image: the CSV columns."""
        guess = self.zero_shot_guess
        rows = []
        for i in range(len(self)):
            row = {"index": i, "class_id": int(self.labels[i]), "class_name": self.class_names[self.labels[i]]}
            row.update({f"sim_{r}": float(self.similarities[i, k]) for k, r in enumerate(TEMPLATE_ROLES)})
            row.update({f"p_{r}": float(self.probabilities[i, k]) for k, r in enumerate(TEMPLATE_ROLES)})
            row["quality"] = float(self.quality[i])
            row.update({"zs_guess_id": int(guess[i]), "zs_guess": self.class_names[guess[i]],
                        "zs_prob": float(self.zero_shot_probs[i, self.labels[i]]), "zs_correct": bool(guess[i] == self.labels[i])})
            rows.append(row)
        return rows

    def ranking(self, class_id: int) -> np.ndarray:
        """Indices of the images of `class_id`, best quality first (ties keep generation order)."""
        idx = np.flatnonzero(self.labels == class_id)
        return idx[np.argsort(-self.quality[idx], kind="stable")]


def quality_score(probabilities: np.ndarray) -> np.ndarray:
    """quality = p_good + p_clear - p_blurry (columns in TEMPLATE_ROLES order)."""
    probabilities = np.asarray(probabilities)
    return probabilities[..., 0] + probabilities[..., 1] - probabilities[..., 2]


class ClipScorer:
    """A loaded CLIPModel + CLIPProcessor with the prompt templates; `score()` does the work."""

    def __init__(self, model, processor, templates: Sequence[str] = DEFAULT_TEMPLATES,
                 zero_shot_template: str = ZERO_SHOT_TEMPLATE, device=None, batch_size: int = 64, name: str = ""):
        templates = tuple(templates)
        if len(templates) != 3:
            raise ValueError(f"need exactly 3 templates ({', '.join(TEMPLATE_ROLES)}: positive, positive, negative), got {len(templates)}")
        for template in (*templates, zero_shot_template):
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} must contain exactly one '{{}}' for the class name")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.processor = model, processor
        self.templates, self.zero_shot_template = templates, zero_shot_template
        self.device = device or next(model.parameters()).device
        self.batch_size, self.name = batch_size, name
        self._text_cache: dict[str, np.ndarray] = {}

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp().cpu())

    def pixel_values(self, images):
        """The processor's input tensor (B×3×H×W at the processor's crop size) for generated images."""
        return self.processor(images=to_rgb_pil(images), return_tensors="pt")["pixel_values"]

    def image_embeddings(self, images) -> np.ndarray:
        """L2-normalised image embeddings, (N, D)."""
        import torch

        rgb = to_rgb_pil(images)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(rgb), self.batch_size):
                pixels = self.processor(images=rgb[start:start + self.batch_size], return_tensors="pt")["pixel_values"]
                features = _features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype)))
                chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        dim = self.model.config.projection_dim
        return np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)

    def text_embeddings(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, (len(prompts), D); cached per prompt."""
        import torch

        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            tokens = self.processor(text=missing, return_tensors="pt", padding=True, truncation=True)
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                features = _features(self.model.get_text_features(**tokens))
            features = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
            self._text_cache.update(zip(missing, features))
        return np.stack([self._text_cache[p] for p in prompts])

    def score(self, images, labels, class_names: Sequence[str]) -> ClipScores:
        """Scores each image against the prompts of its intended class `labels[i]` (an id into `class_names`)."""
        class_names = list(class_names)
        rgb = to_rgb_pil(images)
        labels = _as_labels(labels, len(rgb), len(class_names))
        names = [prompt_name(n) for n in class_names]
        quality_text = self.text_embeddings([t.format(n) for n in names for t in self.templates])
        quality_text = quality_text.reshape(len(names), len(self.templates), -1)           # (C, 3, D)
        class_text = self.text_embeddings([self.zero_shot_template.format(n) for n in names])  # (C, D)
        image = self.image_embeddings(rgb)                                                   # (N, D)
        scale = self.logit_scale
        sims = np.einsum("nd,nkd->nk", image, quality_text[labels]) if len(rgb) else np.zeros((0, 3), np.float32)
        probs = _softmax(scale * sims)
        zs_probs = _softmax(scale * image @ class_text.T) if len(rgb) else np.zeros((0, len(names)), np.float32)
        return ClipScores(labels, sims, probs, quality_score(probs), zs_probs, class_names, self.templates,
                          self.zero_shot_template, scale, self.name, [im.convert("L") for im in rgb])


def _features(output):
    # transformers 4.x returns the projected embeddings as a tensor, 5.x a BaseModelOutputWithPooling whose
    # pooler_output holds them.
    return output if hasattr(output, "ndim") else output.pooler_output


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0:
        return logits
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_clip_source(model_id: str, what: str = "--clip-model"):
    """A local CLIP folder must exist and hold a config.json of model_type 'clip' (a Hub id is checked when loaded):
    a ClipModelError naming `what` and the value otherwise, before any work."""
    model_id = str(model_id)
    looks_local = os.path.exists(model_id) or model_id.startswith((".", "/", "~")) or os.sep + os.sep in model_id
    if not looks_local:
        return
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        raise ClipModelError(f"{what}: CLIP model folder {model_id} does not exist; {HOW_TO_GET_CLIP}")
    config_path = folder / "config.json"
    model_type = None
    if config_path.is_file():
        try:
            model_type = json.loads(config_path.read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            model_type = None
    if model_type != "clip":
        found = f"model_type {model_type!r} in config.json" if config_path.is_file() else "no config.json"
        raise ClipModelError(f"{what}: {model_id} is not a CLIP model folder ({found}); {HOW_TO_GET_CLIP}")


def load_clip(model_id: str | None = None, device=None, templates: Sequence[str] = DEFAULT_TEMPLATES,
              zero_shot_template: str = ZERO_SHOT_TEMPLATE, batch_size: int = 64) -> ClipScorer:
    """Loads `CLIPModel` + `CLIPProcessor` from a Hub id or a local folder (None: the shipped Fashion-MNIST CLIP).

    Raises:
        ClipModelError: the folder is missing or is not a CLIP model, or the id cannot be loaded (e.g. offline).
    """
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model_id = default_clip_model() if model_id is None else str(model_id)
    check_clip_source(model_id)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model = CLIPModel.from_pretrained(model_id)
    except (OSError, ValueError) as e:
        raise ClipModelError(f"could not load CLIPModel from {model_id!r}: {e}\n{HOW_TO_GET_CLIP}") from None
    try:
        processor = CLIPProcessor.from_pretrained(model_id)
    except (OSError, ValueError, TypeError) as e:
        raise ClipModelError(
            f"{model_id!r} holds CLIP weights but no usable CLIPProcessor (tokenizer + image processor files): {e}\n"
            f"{HOW_TO_GET_CLIP}"
        ) from None
    model.to(device).eval()
    return ClipScorer(model, processor, templates, zero_shot_template, device, batch_size, name=model_id)


# ---------------------------------------------------------------------------------------------------- tables
def _mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    if len(values) == 0:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _summary(scores: ClipScores, index: np.ndarray) -> dict:
    row = {"n": int(len(index))}
    for key, values in [("quality", scores.quality)] + [
        (f"sim_{r}", scores.similarities[:, k]) for k, r in enumerate(TEMPLATE_ROLES)
    ]:
        row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values[index])
    row["zero_shot_agreement"] = float(scores.zero_shot_correct[index].mean()) if len(index) else None
    return row


def per_class_table(scores: ClipScores) -> dict:
    """Mean ± std (ddof=1) of quality and the three similarities, and zero-shot agreement, per class and overall."""
    classes = [{"class_id": c, "class_name": name, **_summary(scores, np.flatnonzero(scores.labels == c))}
               for c, name in enumerate(scores.class_names)]
    return {
        "clip_model": scores.clip_model,
        "templates": list(scores.templates),
        "zero_shot_template": scores.zero_shot_template,
        "logit_scale": scores.logit_scale,
        "quality": "p_good + p_clear - p_blurry (= 1 - 2 p_blurry), softmax over the three prompts at CLIP's logit scale",
        "classes": classes,
        "overall": _summary(scores, np.arange(len(scores))),
    }


def _fmt(mean, std, digits=3) -> str:
    return "–" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_markdown(table: dict) -> str:
    lines = [
        f"CLIP model: `{table['clip_model']}`; quality = p_good + p_clear − p_blurry over the prompts "
        + ", ".join(f"“{t}”" for t in table["templates"]) + f"; zero-shot prompt “{table['zero_shot_template']}”.",
        "",
        "| class | n | quality | sim good | sim clear | sim blurry | zero-shot agreement |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [*table["classes"], {"class_name": "**all**", **table["overall"]}]:
        agree = "–" if row["zero_shot_agreement"] is None else f"{100 * row['zero_shot_agreement']:.0f}%"
        cells = [_fmt(row[f"{k}_mean"], row[f"{k}_std"]) for k in ("quality", "sim_good", "sim_clear", "sim_blurry")]
        lines.append(f"| {row['class_name']} | {row['n']} | " + " | ".join(cells) + f" | {agree} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return path


def ranked_grid(scores: ClipScores, k: int, lowest: bool = False, title: str | None = None) -> Image.Image:
    """One row per class: its `k` highest (or lowest, worst first) quality images, column labels = rank."""
    rows, names = [], []
    for c, name in enumerate(scores.class_names):
        order = scores.ranking(c)
        if len(order) == 0:
            continue
        picked = order[::-1][:k] if lowest else order[:k]
        rows.append([scores.images[i] for i in picked])
        names.append(name)
    columns = [f"{'worst' if lowest else 'best'} {j + 1}" for j in range(max(len(r) for r in rows))] if rows else None
    return labelled_grid(rows, names, column_labels=columns, scale=3, title=title)


def write_evaluation(scores: ClipScores, out_dir: str | Path, top: int = 4, extra: dict | None = None) -> dict[str, Path]:
    """Writes clip_scores.csv, clip_per_class.json / .md, clip_best.png and clip_worst.png into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = {**per_class_table(scores), **(extra or {})}
    paths = {
        "csv": write_csv(scores.rows(), out / "clip_scores.csv"),
        "json": atomic_write_json(out / "clip_per_class.json", table, allow_nan=False),
        "md": atomic_write_text(out / "clip_per_class.md", table_markdown(table)),
    }
    if len(scores) and scores.images:
        paths["best_png"] = atomic_save_image(ranked_grid(scores, top, title="highest CLIP quality per class"),
                                              out / "clip_best.png")
        paths["worst_png"] = atomic_save_image(ranked_grid(scores, top, lowest=True,
                                                           title="lowest CLIP quality per class"), out / "clip_worst.png")
    return paths


# ---------------------------------------------------------------------------------------------------- generation
def evaluate_pipeline(pipe, scorer: ClipScorer, num_per_class: int = 10, class_labels=None, seed: int = 0,
                      out_dir: str | Path | None = None, top: int = 4, extra: dict | None = None, **sampling) -> ClipScores:
    """Generates `num_per_class` images per class with `pipeline.sampling.generate`, scores them, and (with
    `out_dir`) writes the reports. `sampling`: `settings=SamplingSettings(...)` or its fields (see `generate`)."""
    check_int(num_per_class, "num_per_class")
    samples = generate(pipe, class_labels, num_per_class, seed, **sampling)
    scores = scorer.score(samples.images, samples.class_ids, pipe.class_names)
    if out_dir is not None:
        info = {"num_per_class": num_per_class, "seed": seed, "sampling": samples.settings.to_json(), **(extra or {})}
        scores.paths = write_evaluation(scores, out_dir, top, extra=info)
    return scores
