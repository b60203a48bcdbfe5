"""A Fashion-MNIST CLIP trained here: a small `transformers.CLIPModel` learnt contrastively on the 60,000 training
images with captions built from what is known about each image, saved with a real `CLIPProcessor` so that
`CLIPModel.from_pretrained(DIR)` / `CLIPProcessor.from_pretrained(DIR)` and the project's CLIP scoring load it offline.

A caption says (`caption`):
    the class, under one of its names      "a photo of a sneaker", "a photo of a trainer"
    measured attributes, now and then      "a photo of a wide dark dress" (within-class terciles of the style
                                           attributes, pipeline.style.attributes: width, height, brightness, pattern)
    quality                                clean images: "a clear photo of a …", "a good photo of a …", "a photo of a …";
                                           degraded copies made on the fly (blur, noise, low contrast, TRAIN_DEGRADATIONS):
                                           "a blurry photo of a …"

Images become pixel values by `pixel_values`, a differentiable torch resize + normalise equal to the saved
CLIPImageProcessor's output (so a training loss can backpropagate through CLIP). Identical captions in a batch are one
positive set (`contrastive_loss`): with ten classes most captions repeat, and counting the copies as negatives would
teach CLIP to tell apart images that are described the same way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger("fashion_ddpm.clip")

# The evaluation's prompt name first (pipeline.evaluation.clip.PROMPT_NAMES), then other names a person would use.
ALIASES = {
    "T-shirt/top": ("t-shirt", "top", "tee"),
    "Trouser": ("pair of trousers", "pair of pants", "trousers"),
    "Pullover": ("pullover", "sweater", "jumper"),
    "Dress": ("dress",),
    "Coat": ("coat", "jacket"),
    "Sandal": ("sandal",),
    "Shirt": ("shirt", "blouse"),
    "Sneaker": ("sneaker", "trainer", "running shoe"),
    "Bag": ("bag", "handbag"),
    "Ankle boot": ("ankle boot", "boot"),
}
ATTRIBUTE_WORDS = {"width": ("narrow", "wide"), "height": ("short", "long"), "brightness": ("dark", "light"),
                   "pattern": ("plain", "patterned")}  # (lowest third, highest third of its class)
CLEAN_TEMPLATES = ("a photo of a {}", "a clear photo of a {}", "a good photo of a {}")
DEGRADED_TEMPLATE = "a blurry photo of a {}"
TRAIN_DEGRADATIONS = ("blur", "noise", "low_contrast")  # captioned "blurry" in training
HELD_OUT_DEGRADATIONS = ("pixelate", "jpeg", "salt_pepper")  # never seen in training: what the quality AUC is measured on
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530  # Fashion-MNIST's training-set pixel mean and std, in [0, 1]
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


@dataclass
class ClipTrainConfig:
    seed: int = 0
    epochs: float = 3.0
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    degrade_prob: float = 0.3  # share of images replaced by a degraded copy captioned "blurry"
    attribute_prob: float = 0.5  # chance that each known attribute word is put in a caption
    hidden_size: int = 128
    vision_layers: int = 4
    text_layers: int = 3
    heads: int = 4
    patch_size: int = 4
    projection_dim: int = 64
    max_train_images: int | None = None

    @classmethod
    def from_dict(cls, values: dict) -> ClipTrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown CLIP training key(s) {unknown}; accepted: {sorted(known)}")
        config = cls(**values)
        checks = {"epochs": config.epochs > 0, "batch_size": config.batch_size >= 2, "learning_rate": config.learning_rate > 0,
                  "degrade_prob": 0 <= config.degrade_prob < 1, "attribute_prob": 0 <= config.attribute_prob <= 1,
                  "hidden_size": config.hidden_size % config.heads == 0 and config.hidden_size > 0,
                  "patch_size": config.patch_size > 0 and 28 % config.patch_size == 0}
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"CLIP training key {key!r} is out of range, got {getattr(config, key)!r}")
        return config


# ---------------------------------------------------------------------------------------------- degradations
def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of B×1×H×W with per-image sigma (a 7-tap separable kernel)."""
    offsets = torch.arange(-3, 4, dtype=x.dtype)
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, 7)
    b = x.shape[0]
    rows = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate").transpose(0, 1), kernel[:, None, None, :], groups=b)
    out = F.conv2d(F.pad(rows, (0, 0, 3, 3), mode="replicate"), kernel[:, None, :, None], groups=b)
    return out.transpose(0, 1)


def _jpeg(x: torch.Tensor, quality: np.ndarray) -> torch.Tensor:
    import io

    from PIL import Image

    out = []
    for image, q in zip((x[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy(), quality):
        buffer = io.BytesIO()
        Image.fromarray(image, "L").save(buffer, format="JPEG", quality=int(q))
        out.append(np.asarray(Image.open(buffer).convert("L"), dtype=np.float32) / 255)
    return torch.from_numpy(np.stack(out))[:, None]


def degrade(x: torch.Tensor, kind: str, strength: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A degraded copy of images x (B×1×H×W in [0, 1]); `strength` (B,) in [0, 1] from mild to severe."""
    s = strength.to(x.dtype)[:, None, None, None]
    if kind == "blur":
        return _gaussian_blur(x, 0.7 + 1.3 * strength.to(x.dtype))
    if kind == "noise":
        return (x + (0.08 + 0.22 * s) * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    if kind == "low_contrast":
        mean = x.mean(dim=(2, 3), keepdim=True)
        return mean + (x - mean) * (0.5 - 0.35 * s)
    if kind == "pixelate":  # average 2×2 (mild) or 4×4 (severe) blocks
        factor = 2 if float(strength.mean()) < 0.5 else 4
        return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")
    if kind == "jpeg":
        return _jpeg(x, np.round(25 - 20 * strength.numpy()))
    if kind == "salt_pepper":
        u = torch.rand(x.shape, generator=generator)
        share = 0.04 + 0.12 * s
        return torch.where(u < share / 2, torch.zeros_like(x), torch.where(u > 1 - share / 2, torch.ones_like(x), x))
    raise ValueError(f"degradation {kind!r} is not one of {TRAIN_DEGRADATIONS + HELD_OUT_DEGRADATIONS}")


# ---------------------------------------------------------------------------------------------- captions
def attribute_levels(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, np.ndarray]:
    """Per image and attribute: 0 (lowest third of its class), 1 (highest third) or -1 (the middle, or unmeasured)."""
    from .style import measured_attributes

    measured = measured_attributes(images, list(ATTRIBUTE_WORDS))
    labels = labels.numpy()
    levels = {}
    for name, values in measured.items():
        level = np.full(len(values), -1, dtype=np.int8)
        for c in range(num_classes):
            own = labels == c
            low, high = np.nanquantile(values[own], [1 / 3, 2 / 3])
            level[own & (values <= low)] = 0
            level[own & (values >= high)] = 1
        levels[name] = level
    return levels


def caption(class_name: str, words: list[str] = (), degraded: bool = False, alias: int = 0, template: int = 0) -> str:
    """'a clear photo of a wide dark dress': the class under name number `alias`, the attribute words, the quality."""
    names = ALIASES[class_name]
    thing = " ".join([*words, names[alias % len(names)]])
    return (DEGRADED_TEMPLATE if degraded else CLEAN_TEMPLATES[template % len(CLEAN_TEMPLATES)]).format(thing)


def batch_captions(labels, class_names, levels: dict[str, np.ndarray], index, degraded, attribute_prob: float,
                   generator: torch.Generator) -> list[str]:
    """Captions of the images `index` (their labels `labels`), each choice drawn from `generator`."""
    n = len(index)
    draws = torch.rand((n, len(ATTRIBUTE_WORDS)), generator=generator).numpy()
    aliases = torch.randint(0, 6, (n,), generator=generator).numpy()
    templates = torch.randint(0, len(CLEAN_TEMPLATES), (n,), generator=generator).numpy()
    out = []
    for k, (i, label) in enumerate(zip(index, labels)):
        words = [ATTRIBUTE_WORDS[a][levels[a][i]] for j, a in enumerate(ATTRIBUTE_WORDS)
                 if levels[a][i] >= 0 and draws[k, j] < attribute_prob]
        out.append(caption(class_names[int(label)], words, bool(degraded[k]), int(aliases[k]), int(templates[k])))
    return out


def vocabulary() -> list[str]:
    """Every caption the training can write (each word of them, in order of first use)."""
    words = [w for pair in ATTRIBUTE_WORDS.values() for w in pair]
    return [caption(c, [w], d, a, t) for c in ALIASES for w in words for d in (False, True) for a in range(len(ALIASES[c]))
            for t in range(len(CLEAN_TEMPLATES))]


# ---------------------------------------------------------------------------------------------- tokenizer, model
def byte_chars() -> list[str]:
    """The 256 characters CLIP's byte-level BPE stands the bytes for (bytes_to_unicode)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def build_tokenizer(folder: Path, texts: list[str]):
    """A CLIPTokenizer with one chain of BPE merges per word of `texts`, and any other text spelled byte by byte.

    Written by hand because the vocabulary is closed (the captions are ours) and small: most words end as one token
    (a few, e.g. "pullover", as pieces, where another word's earlier merge claims two of their letters first), no
    text is lost, and CLIPTokenizer/CLIPTokenizerFast load the files like any CLIP tokenizer's."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = byte_chars()
    base = chars + [c + "</w>" for c in chars]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate([*base, *SPECIAL_TOKENS])}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    spelled = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))  # byte by byte: the words' pieces
    vocab, merges, word = list(base), [], []
    for text in texts:
        for piece in spelled.tokenize(text):
            word.append(piece)
            if not piece.endswith("</w>"):
                continue
            so_far = word[0]
            for nxt in word[1:]:
                merges.append(f"{so_far} {nxt}")
                so_far += nxt
                vocab.append(so_far)
            word = []
    vocab = list(dict.fromkeys(vocab)) + list(SPECIAL_TOKENS)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=32)


def build_processor(tokenizer):
    from transformers import CLIPImageProcessor, CLIPProcessor

    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                         image_mean=[PIXEL_MEAN] * 3, image_std=[PIXEL_STD] * 3)
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_model(config: ClipTrainConfig, tokenizer):
    from transformers import CLIPConfig, CLIPModel

    h = config.hidden_size
    text = dict(vocab_size=len(tokenizer), hidden_size=h, intermediate_size=4 * h, num_hidden_layers=config.text_layers,
                num_attention_heads=config.heads, max_position_embeddings=32, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=h, intermediate_size=4 * h, num_hidden_layers=config.vision_layers,
                  num_attention_heads=config.heads, image_size=28, patch_size=config.patch_size)
    torch.manual_seed(config.seed)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=config.projection_dim))


def pixel_values(images: torch.Tensor, image_processor) -> torch.Tensor:
    """Grey images B×1×H×W in [0, 1] -> the processor's B×3×S×S input, differentiably: bicubic resize to the crop size
    (when it differs), grey copied to three channels, normalised with the processor's mean and std."""
    size = image_processor.crop_size["height"], image_processor.crop_size["width"]
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(image_processor.image_mean, dtype=images.dtype, device=images.device)[None, :, None, None]
    std = torch.tensor(image_processor.image_std, dtype=images.dtype, device=images.device)[None, :, None, None]
    return (images.expand(-1, 3, -1, -1) - mean) / std


def contrastive_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, caption_ids: torch.Tensor,
                     logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy, with every image whose caption is the same as one positive set: image i is
    scored against the batch's distinct captions, and caption k against the images it describes (uniform target)."""
    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    logits = logit_scale.exp() * image_embeds @ text_embeds.T  # (images, distinct captions)
    image_loss = F.cross_entropy(logits, caption_ids)
    describes = F.one_hot(caption_ids, num_classes=text_embeds.shape[0]).T.float()  # (captions, images)
    text_loss = -(describes / describes.sum(1, keepdim=True) * logits.T.log_softmax(dim=1)).sum(1).mean()
    return (image_loss + text_loss) / 2


# ---------------------------------------------------------------------------------------------- training
def train_clip(config: ClipTrainConfig, data, out: str | Path, log_every: int = 50) -> Path:
    """Trains on `data` (pipeline.data.ImageDataset) and saves CLIPModel + CLIPProcessor + training.json into `out`
    (written into a temporary folder first, then moved: a kill leaves no half-written model)."""
    import shutil
    import tempfile

    out = Path(out)
    images, labels = data.images, data.labels
    if config.max_train_images:
        images, labels = images[:config.max_train_images], labels[:config.max_train_images]
    levels = attribute_levels(images, labels, len(data.class_names))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clip-", dir=out.parent))  # beside `out`: the final move is a rename
    tokenizer = build_tokenizer(tmp / "tokenizer-build", vocabulary())
    processor = build_processor(tokenizer)
    model = build_model(config, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(images) // config.batch_size)
    total = max(1, round(config.epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / config.warmup_steps)
                                                 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    g = torch.Generator().manual_seed(config.seed)
    log, began, order = [], time.perf_counter(), torch.randperm(len(images), generator=g)
    model.train()
    for step in range(total):
        start = (step % steps_per_epoch) * config.batch_size
        if step and start == 0:
            order = torch.randperm(len(images), generator=g)
        index = order[start:start + config.batch_size]
        x = images[index].float()[:, None] / 255
        degraded = torch.rand(len(index), generator=g) < config.degrade_prob
        kinds = torch.randint(0, len(TRAIN_DEGRADATIONS), (len(index),), generator=g)
        strength = torch.rand(len(index), generator=g)
        for k, kind in enumerate(TRAIN_DEGRADATIONS):
            chosen = degraded & (kinds == k)
            if chosen.any():
                x[chosen] = degrade(x[chosen], kind, strength[chosen], g)
        texts = batch_captions(labels[index].numpy(), data.class_names, levels, index.numpy(), degraded.numpy(),
                               config.attribute_prob, g)
        distinct = list(dict.fromkeys(texts))
        caption_ids = torch.tensor([distinct.index(t) for t in texts])
        tokens = tokenizer(distinct, padding=True, return_tensors="pt")
        image_embeds = model.get_image_features(pixel_values=pixel_values(x, processor.image_processor))
        text_embeds = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        image_embeds, text_embeds = (e if torch.is_tensor(e) else e.pooler_output for e in (image_embeds, text_embeds))
        loss = contrastive_loss(image_embeds, text_embeds, caption_ids, model.logit_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP's cap on the temperature
        if (step + 1) % log_every == 0 or step + 1 == total:
            row = {"step": step + 1, "loss": loss.item(), "logit_scale": model.logit_scale.exp().item(),
                   "lr": schedule.get_last_lr()[0], "wall_time_s": time.perf_counter() - began}
            log.append(row)
            logger.info("step %d/%d loss %.4f scale %.1f", step + 1, total, row["loss"], row["logit_scale"])
    model.eval()
    shutil.rmtree(tmp / "tokenizer-build")
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    record = {"config": asdict(config), "updates": total, "images_seen": total * config.batch_size,
              "train_images": len(images), "data_source": data.source, "parameters": sum(p.numel() for p in model.parameters()),
              "wall_time_s": time.perf_counter() - began, "torch_threads": torch.get_num_threads(), "log": log}
    (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return out
