"""What a run is: its shards, its settings (what the images and the layout depend on), the model's fingerprint and the
dataset's columns. Torch- and datasets-free at import."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..settings import SamplingSettings

DEFAULT_SHARD_SIZE = 250  # images per shard: what a kill can lose, and the most images held in memory at once
SEED_RULE = "image i of class c uses the generator seed seed + 1,000,000 * c + i (pipeline.sampling.image_seed)"
SAMPLING_KEYS = ("sampler", "num_inference_steps", "guidance_scale", "guidance_interval", "guidance_rescale")


class SynthesisError(ValueError):
    """A request that cannot be honoured (bad values, an output folder holding something else); the message says why."""


@dataclass(frozen=True)
class Shard:
    """Images start .. start + count - 1 of class `class_id`, the number-th of `total` shards."""

    number: int
    total: int
    class_id: int
    start: int
    count: int

    @property
    def name(self) -> str:
        return f"train-{self.number:05d}-of-{self.total:05d}"


def plan_shards(class_ids: list[int], per_class: int, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """The shards of a run: each class in request order, cut into chunks of at most `shard_size` images."""
    chunks = [(c, lo, min(shard_size, per_class - lo)) for c in class_ids for lo in range(0, per_class, shard_size)]
    return [Shard(k, len(chunks), c, lo, n) for k, (c, lo, n) in enumerate(chunks)]


def features(class_names: list[str], image_column: str = "image", style_attributes=()):
    """The dataset's `datasets.Features` (image_column="file_name": the imagefolder metadata file's). A style model's
    sets add, per attribute, `requested_<a>` (the percentile asked for; NaN = free) and `measured_<a>` (the image's
    measured value as a percentile within its class, `pipeline.style.attributes.measure`)."""
    import datasets

    image = datasets.Image() if image_column == "image" else datasets.Value("string")
    style = {f"{kind}_{a}": datasets.Value("float64") for a in style_attributes for kind in ("requested", "measured")}
    return datasets.Features({
        image_column: image,
        "label": datasets.ClassLabel(names=list(class_names)),
        "index": datasets.Value("int64"),
        "seed": datasets.Value("int64"),
        "sampler": datasets.Value("string"),
        "steps": datasets.Value("int32"),
        "guidance_scale": datasets.Value("float64"),
        **style,
    })


def model_fingerprint(pipe) -> str:
    """sha256 of what decides the images: U-Net weights and config, scheduler config, class names, and the condition
    encoder's weights and config where the model has one (a style model, a distilled student)."""
    import torch

    digest = hashlib.sha256()
    encoder = getattr(pipe, "condition_encoder", None)
    for module in (pipe.unet, encoder) if encoder is not None else (pipe.unet,):  # a model without one: hash as before
        state = module.state_dict()
        for name in sorted(state):
            tensor = state[name].detach().cpu().contiguous()
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    configs = [pipe.unet.config, pipe.scheduler.config, {"class_names": pipe.class_names}]
    for config in configs + ([encoder.config] if encoder is not None else []):
        # not the private keys ("_name_or_path", "_diffusers_version", ...): where a model was loaded from does not count
        public = {k: v for k, v in dict(config).items() if not k.startswith("_")}
        digest.update(json.dumps(public, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def run_settings(pipe, fmt: str, class_ids: list[int], per_class: int, seed: int, shard_size: int,
                 sampling: SamplingSettings, style: dict | None = None) -> dict:
    """The settings a manifest records, as JSON values: equal settings = the same images and layout (resumable)."""
    return json.loads(json.dumps({
        "format": fmt,
        "model_sha256": model_fingerprint(pipe),
        "class_ids": class_ids,
        "class_names": list(pipe.class_names),
        "per_class": per_class,
        "seed": seed,
        "shard_size": shard_size,
        **sampling.to_json(),
        # a style model's sets: its attributes (the extra columns) and the request ({}: every attribute free)
        **({"style_attributes": list(pipe.style_attributes), "style": dict(style or {})} if pipe.style_attributes else {}),
    }))


def canonical_settings(settings: dict) -> dict:
    """A manifest's settings with its sampling part read by `SamplingSettings.from_json` and written back: the form
    today's runs write, for manifests of any age (so an older unfinished run still resumes)."""
    other = {k: v for k, v in settings.items() if k not in SAMPLING_KEYS}
    return {**other, **SamplingSettings.from_json(settings).to_json()}
