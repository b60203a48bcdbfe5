"""Labelled image grids: one row per class, its name on the left."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def labelled_grid(
    rows: Sequence[Sequence[Image.Image]],
    row_labels: Sequence[str],
    column_labels: Sequence[str] | None = None,
    scale: int = 2,
    title: str | None = None,
) -> Image.Image:
    """Lays out `rows` of equally sized images, with `row_labels` on the left and optional column labels on top."""
    if len(rows) != len(row_labels):
        raise ValueError(f"got {len(rows)} rows but {len(row_labels)} row labels")
    if not rows or not any(rows):
        raise ValueError("labelled_grid needs at least one image")
    width, height = rows[0][0].size
    cell_w, cell_h, pad = width * scale, height * scale, 2
    font = _font()
    label_w = 8 + max(int(font.getlength(label)) for label in row_labels)
    top = (18 if column_labels else 0) + (20 if title else 0)
    ncols = max(len(r) for r in rows)
    canvas = Image.new("L", (label_w + ncols * (cell_w + pad), top + len(rows) * (cell_h + pad)), 255)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title, fill=0, font=font)
    for c, label in enumerate(column_labels or []):
        draw.text((label_w + c * (cell_w + pad), top - 16), str(label), fill=0, font=font)
    for r, (images, label) in enumerate(zip(rows, row_labels)):
        y = top + r * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 6), label, fill=0, font=font)
        for c, image in enumerate(images):
            canvas.paste(image.convert("L").resize((cell_w, cell_h), Image.NEAREST), (label_w + c * (cell_w + pad), y))
    return canvas


def to_pil(images) -> list[Image.Image]:
    """Converts a B×1×H×W tensor / B×H×W×1 array in [0, 1], or a list of PIL images, to PIL images."""
    if isinstance(images, list):
        return images
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in array]
