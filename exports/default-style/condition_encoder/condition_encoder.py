"""The condition encoders: class (+ style attributes) -> the U-Net's class embedding, and the few-step student's
encoder, which also takes the guidance weight and the noise level its step lands on.

Self-contained (torch, numpy and diffusers only), like the pipeline file: `FashionDDPMPipeline.save_pretrained` copies it
to `<folder>/condition_encoder/condition_encoder.py` beside the component's weights and names it in model_index.json as
["condition_encoder", "FashionConditionEncoder"] (a student: "FashionStudentConditionEncoder"), so
`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` loads it in a process that never installed this
package.

The U-Net of a style model is built with `class_embed_type="identity"`: the embedding it adds to its time embedding
is this encoder's output, the class embedding (one row per class plus the null class of classifier-free guidance)
plus a small MLP of the style vector. A style vector holds, per attribute, the requested percentile within the class
(in [0, 1]) and a "given" flag; attributes not given are free. The MLP's last layer starts at zero, so a model
initialised from a class-only model starts exactly as that model. The percentile tables of the training set (the
values at `percentile_levels` of each attribute, per class) are saved in the config: they turn a measurement into the
percentile a request means ("wide" = wide for a Trouser, not compared with Coats).

A distilled few-step student (pipeline/training/distill/) uses `FashionStudentConditionEncoder`, the same encoder with
two more inputs, after Meng et al. 2023 (guidance as an input) and Frans et al. 2024 (the step's size as an input): the
guidance weight w of the teacher it imitates, and the noise level its step lands on. They enter through a second
zero-initialised MLP (of the class, w and the target level), so a student starts as its class-only teacher's
conditional model. Its config holds the w range it was distilled on, the guidance interval that w meant for the
teacher, and its timestep schedules. A consistency student (`consistency`: Song et al. 2023) predicts the teacher's
final image from every step, so its target level is always 0 (the clean image) whatever the pipeline's step lands on.
Students saved before this class existed name "FashionConditionEncoder" with these keys in their config;
`FashionDDPMPipeline.from_pretrained` loads them as this class.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

# descriptor -> (attribute, percentile): the words a request may use
DESCRIPTORS = {
    "thin": ("width", 0.1), "wide": ("width", 0.9),
    "short": ("height", 0.1), "tall": ("height", 0.9),
    "small": ("area", 0.1), "large": ("area", 0.9),
    "slanted-left": ("slant", 0.1), "slanted-right": ("slant", 0.9),
    "thin-strokes": ("thickness", 0.1), "thick-strokes": ("thickness", 0.9),
    "dark": ("brightness", 0.1), "light": ("brightness", 0.9),
    "plain": ("pattern", 0.1), "patterned": ("pattern", 0.9),
}


class FashionConditionEncoder(ModelMixin, ConfigMixin):
    """class id (+ style percentiles and their "given" mask) -> an embedding of `embedding_dim` for the U-Net.

    Args:
        num_class_embeds: classes + 1 (the last id is the null class of classifier-free guidance).
        embedding_dim: the U-Net's time-embedding size (4 × block_out_channels[0] for `UNet2DModel`).
        style_attributes: the attribute names the model takes (empty: a class-only encoder).
        style_hidden_dim: width of the style MLP.
        percentile_levels / percentile_tables: {attribute: per class, the training values at those levels}.
    """

    @register_to_config
    def __init__(self, num_class_embeds: int = 11, embedding_dim: int = 512, style_attributes: list[str] | None = None,
                 style_hidden_dim: int = 128, percentile_levels: list[float] | None = None,
                 percentile_tables: dict | None = None):
        super().__init__()
        self.class_embedding = nn.Embedding(num_class_embeds, embedding_dim)
        attributes = list(style_attributes or [])
        if attributes:
            self.style_mlp = nn.Sequential(nn.Linear(2 * len(attributes), style_hidden_dim), nn.SiLU(),
                                           nn.Linear(style_hidden_dim, embedding_dim))
            nn.init.zeros_(self.style_mlp[-1].weight)  # starts as the class-only model
            nn.init.zeros_(self.style_mlp[-1].bias)

    @property
    def style_attributes(self) -> list[str]:
        return list(self.config.style_attributes or [])

    def forward(self, class_labels: torch.Tensor, style: torch.Tensor | None = None,
                given: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) class ids, (B, A) percentiles and (B, A) 1/0 "given" flags -> (B, embedding_dim)."""
        return self.add_style(self.class_embedding(class_labels), style, given)

    def add_style(self, embedding: torch.Tensor, style: torch.Tensor | None = None,
                  given: torch.Tensor | None = None) -> torch.Tensor:
        """`embedding` plus the style MLP's term (no style given: every attribute free); unchanged for a class-only
        encoder."""
        if not self.style_attributes:
            return embedding
        batch, count = len(embedding), len(self.style_attributes)
        if style is None:  # nothing given: every attribute free
            style = torch.zeros(batch, count, device=embedding.device)
            given = torch.zeros(batch, count, device=embedding.device)
        values = torch.where(given > 0, style, torch.zeros_like(style)).to(embedding.dtype)
        return embedding + self.style_mlp(torch.cat([values, given.to(embedding.dtype)], dim=1))

    # ------------------------------------------------------------------ requests
    def parse_style(self, style) -> dict[str, float]:
        """{attribute: percentile} of a request: a dict of percentiles in [0, 1], or text of descriptor words and
        attribute=percentile pairs ("wide plain", "width=0.9 pattern=0.1", "wide, pattern=0.1").

        Raises:
            ValueError: one line naming the bad value and what is accepted (also on a model without style input).
        """
        if style is None:
            return {}
        names = self.style_attributes
        if not names:
            raise ValueError(f"this model takes no style (a class-only model); got style={style!r}. Use a style model "
                             "(its model_index.json lists a condition_encoder with style_attributes)")
        if isinstance(style, str):
            chosen: dict[str, float] = {}
            words = [w for w in re.split(r"[\s,]+", style.strip().lower()) if w]
            if not words:
                raise ValueError(f"style {style!r} names no descriptor; accepted: {sorted(self.descriptors())}")
            for word in words:
                if "=" in word:
                    attribute, _, text = word.partition("=")
                    try:
                        value = float(text)
                    except ValueError:
                        raise ValueError(f"style {word!r} must be ATTRIBUTE=PERCENTILE such as width=0.9") from None
                    (attribute, value), = self.parse_style({attribute: value}).items()
                    if attribute in chosen and chosen[attribute] != value:
                        raise ValueError(f"style {style!r} asks for two {attribute}s; give one")
                    chosen[attribute] = value
                    continue
                if word not in self.descriptors():
                    raise ValueError(f"unknown style word {word!r}; accepted: {sorted(self.descriptors())}")
                attribute, value = self.descriptors()[word]
                if attribute in chosen and chosen[attribute] != value:
                    raise ValueError(f"style {style!r} asks for two {attribute}s; give one of "
                                     f"{[w for w, (a, _) in self.descriptors().items() if a == attribute]}")
                chosen[attribute] = value
            return chosen
        if not isinstance(style, dict) or not style:
            raise ValueError(f"style must be descriptor words (e.g. 'wide plain') or a non-empty dict of percentiles "
                             f"in [0, 1] for {names}; got {style!r}")
        out = {}
        for attribute, value in style.items():
            if attribute not in names:
                raise ValueError(f"unknown style attribute {attribute!r}; this model takes {names}")
            value = value.item() if hasattr(value, "item") else value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
                raise ValueError(f"style[{attribute!r}] must be a percentile in [0, 1], got {value!r}")
            out[attribute] = float(value)
        return out

    def descriptors(self) -> dict[str, tuple[str, float]]:
        """The descriptor words this model understands (those of its attributes)."""
        return {w: (a, v) for w, (a, v) in DESCRIPTORS.items() if a in self.style_attributes}

    def style_tensors(self, style: dict[str, float], batch: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, given) of shape (batch, A) for a parsed request (the same style for every image)."""
        names = self.style_attributes
        values = torch.tensor([style.get(n, 0.0) for n in names], device=device).expand(batch, -1)
        given = torch.tensor([1.0 if n in style else 0.0 for n in names], device=device).expand(batch, -1)
        return values, given

    # ------------------------------------------------------------------ measurements -> percentiles
    def percentiles(self, attribute: str, class_ids, values) -> np.ndarray:
        """The percentile within its class (of the training set) of each measured value: mid-rank on the saved
        quantile grid, so a value equal to many training values (integer widths) lands in the middle of them."""
        levels = np.asarray(self.config.percentile_levels, dtype=np.float64)
        tables = self.config.percentile_tables[attribute]
        class_ids, values = np.asarray(class_ids), np.asarray(values, dtype=np.float64)
        out = np.full(len(values), np.nan)
        for c in np.unique(class_ids):
            grid = np.asarray(tables[int(c)], dtype=np.float64)
            unique, inverse = np.unique(grid, return_inverse=True)
            mid = np.bincount(inverse, weights=levels) / np.bincount(inverse)  # mean level of tied grid values
            pick = class_ids == c
            out[pick] = np.interp(values[pick], unique, mid) if len(unique) > 1 else 0.5
        return out



class FashionStudentConditionEncoder(FashionConditionEncoder):
    """A distilled few-step student's encoder: class (+ style) as `FashionConditionEncoder`, plus the guidance weight w
    of the teacher it imitates and the noise level its step lands on, through a zero-initialised MLP.

    Args:
        guidance_range: the [low, high] w range it was distilled on.
        guidance_interval: the teacher's guidance interval that its w means (None: every step).
        step_schedules: {steps: timesteps} it was distilled for ({"4": [99, 74, 49, 24], ...}).
        distill_hidden_dim / fourier_features: width of its MLP and Fourier features per input.
        consistency: a consistency student, whose every step predicts the image (its target level is always 0).
        Others: as `FashionConditionEncoder`.
    """

    @register_to_config
    def __init__(self, num_class_embeds: int = 11, embedding_dim: int = 512, style_attributes: list[str] | None = None,
                 style_hidden_dim: int = 128, percentile_levels: list[float] | None = None,
                 percentile_tables: dict | None = None, guidance_range: list[float] | None = None,
                 guidance_interval: list[float] | None = None, step_schedules: dict | None = None,
                 distill_hidden_dim: int = 256, fourier_features: int = 6, consistency: bool = False):
        super().__init__(num_class_embeds, embedding_dim, style_attributes, style_hidden_dim, percentile_levels,
                         percentile_tables)
        if not (isinstance(guidance_range, (list, tuple)) and len(guidance_range) == 2
                and guidance_range[0] < guidance_range[1]):
            raise ValueError(f"guidance_range must be [low, high] with low < high (the w range it is distilled on), "
                             f"got {guidance_range!r}")
        width = num_class_embeds + 4 * fourier_features  # one-hot class, Fourier features of w and of the target
        self.distill_mlp = nn.Sequential(nn.Linear(width, distill_hidden_dim), nn.SiLU(),
                                         nn.Linear(distill_hidden_dim, embedding_dim))
        nn.init.zeros_(self.distill_mlp[-1].weight)  # starts as the teacher's conditional model
        nn.init.zeros_(self.distill_mlp[-1].bias)

    def fourier(self, x: torch.Tensor) -> torch.Tensor:
        """sin and cos of x at `fourier_features` octaves of pi: (B,) -> (B, 2 * fourier_features)."""
        scales = math.pi * 2.0 ** torch.arange(self.config.fourier_features, device=x.device, dtype=torch.float32)
        angles = x.float().unsqueeze(1) * scales
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, class_labels: torch.Tensor, style: torch.Tensor | None = None,
                given: torch.Tensor | None = None, guidance: torch.Tensor | None = None,
                target: torch.Tensor | None = None) -> torch.Tensor:
        """As `FashionConditionEncoder.forward`, with (B,) guidance weights and (B,) target noise levels (t + 1) / T
        of the step (0 = the clean image)."""
        if guidance is None or target is None:
            raise ValueError("a distilled condition encoder needs the guidance weight and the target noise level")
        low, high = self.config.guidance_range
        if self.config.consistency:  # a consistency student: every step predicts the image itself
            target = torch.zeros_like(target)
        out = self.class_embedding(class_labels)
        features = [nn.functional.one_hot(class_labels, self.config.num_class_embeds).float(),
                    self.fourier((guidance - low) / (high - low)), self.fourier(target)]
        out = out + self.distill_mlp(torch.cat(features, dim=1).to(out.dtype))
        return self.add_style(out, style, given)


def percentile_tables(measured: dict[str, np.ndarray], labels, num_classes: int, levels) -> dict[str, list]:
    """{attribute: per class, the values at `levels` (quantiles)} of a training set's measurements."""
    labels = np.asarray(labels)
    return {a: [np.nanquantile(v[labels == c], levels).round(6).tolist() for c in range(num_classes)]
            for a, v in measured.items()}
