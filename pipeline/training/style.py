"""Training a style model: the training set's measured attributes as per-class percentiles, the U-Net and its condition
encoder trained as one module, and a style model initialised from a class-only one.

Every training image is measured once (`pipeline.style.attributes.measure`, cached on disk by the images' hash) and its
attributes become percentiles within its class; the percentile tables are saved in the condition encoder's config.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch
from torch import nn

from ..condition_encoder import FashionConditionEncoder, percentile_tables
from ..io import atomic_path

logger = logging.getLogger("fashion_ddpm.train")
PERCENTILE_LEVELS = [round(i / 100, 2) for i in range(101)]


class StyleDenoiser(nn.Module):
    """The U-Net and its condition encoder as the one module training (and distillation) optimises and averages."""

    def __init__(self, unet, encoder: FashionConditionEncoder):
        super().__init__()
        self.unet, self.encoder = unet, encoder

    def forward(self, noisy, t, class_labels, style=None, given=None, **inputs):
        """`inputs`: a distilled encoder's guidance weights and target noise levels."""
        return self.unet(noisy, t, class_labels=self.encoder(class_labels, style, given, **inputs)).sample


def measured_attributes(images: torch.Tensor, attributes: list[str]) -> dict[str, np.ndarray]:
    """The attributes of uint8 images (N, H, W), computed once and cached by the images' sha256."""
    from ..evaluation.inception import cache_dir
    from ..style.attributes import measure

    array = images.numpy()
    digest = hashlib.sha256(array.tobytes()).hexdigest()[:16]
    path = cache_dir() / f"style-attributes_{digest}_n{len(array)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            if all(a in cached for a in attributes):
                return {a: cached[a] for a in attributes}
    logger.info("measuring the style attributes of %d training images (cached in %s)", len(array), path)
    measured = measure(array)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz" to its name
        np.savez(f, **measured)
    return {a: measured[a] for a in attributes}


def build_encoder(data, attributes: list[str], embedding_dim: int, hidden_dim: int) -> tuple[FashionConditionEncoder, torch.Tensor]:
    """A condition encoder with the training set's percentile tables, and every training image's percentiles (N, A)
    (NaN where an image has no item to measure)."""
    measured = measured_attributes(data.images, attributes)
    tables = percentile_tables(measured, data.labels.numpy(), len(data.class_names), PERCENTILE_LEVELS)
    encoder = FashionConditionEncoder(len(data.class_names) + 1, embedding_dim, attributes, hidden_dim, PERCENTILE_LEVELS,
                                      tables)
    return encoder, image_percentiles(encoder, data.images, data.labels)


def image_percentiles(encoder: FashionConditionEncoder, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each uint8 image's attributes (N, H, W; measured once and cached) as its class's percentiles under `encoder`'s
    tables: (N, A) float, NaN where an image has no item to measure."""
    measured = measured_attributes(images, encoder.style_attributes)
    labels = labels.numpy()
    return torch.from_numpy(np.stack([encoder.percentiles(a, labels, measured[a]) for a in encoder.style_attributes],
                                     axis=1)).float()


def from_class_only(base, encoder: FashionConditionEncoder):
    """A style U-Net and encoder that compute exactly what the class-only `base` pipeline computes (the style MLP
    starts at zero): the U-Net's weights but its class embedding, which becomes the encoder's."""
    from diffusers import UNet2DModel

    if getattr(base, "condition_encoder", None) is not None:
        raise ValueError("init_from must be a class-only model (its U-Net has a class embedding of its own)")
    # `_use_default_values` (set on a U-Net built in this process) would reset class_embed_type to its default
    config = {k: v for k, v in base.unet.config.items() if k != "_use_default_values"}
    config.update(class_embed_type="identity", num_class_embeds=None)
    unet = UNet2DModel.from_config(config)
    state = {k: v for k, v in base.unet.state_dict().items() if not k.startswith("class_embedding.")}
    missing, unexpected = unet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"init_from's U-Net does not match: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        encoder.class_embedding.weight.copy_(base.unet.class_embedding.weight)
    return unet


def from_style_model(base, encoder: FashionConditionEncoder):
    """The U-Net and encoder weights of the style model `base`, to train on from (e.g. from an exported checkpoint on
    another machine): its attributes, tables and widths must be the new encoder's (the same training data)."""
    theirs, ours = base.condition_encoder.config, encoder.config
    for key in ("style_attributes", "style_hidden_dim", "percentile_levels", "percentile_tables", "embedding_dim"):
        if theirs.get(key) != ours.get(key):
            raise ValueError(f"init_from's condition encoder has {key} {theirs.get(key)!r}, this config makes "
                             f"{ours.get(key)!r}; a style model is trained on with the same attributes and data")
    encoder.load_state_dict(base.condition_encoder.state_dict())
    return base.unet
