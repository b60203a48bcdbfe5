"""Images: every conversion between tensors, arrays and PIL images, and labelled grids (one row per class).

Generated images are float in [0, 1] (the pipeline's "pt" / "np" output); the U-Net works in [-1, 1]
(`model_range_to_unit` maps back, as the pipeline does); Fashion-MNIST files are uint8.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    width = label_w + ncols * (cell_w + pad)
    if title:  # a grid narrower than its title (one image per class) widens so that the title is not cut off
        width = max(width, 8 + int(font.getlength(title)))
    canvas = Image.new("L", (width, top + len(rows) * (cell_h + pad)), 255)
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


def model_range_to_unit(x):
    """Model range [-1, 1] -> [0, 1], clamped: the pipeline's own output mapping (noisy x_t saturate)."""
    return (x / 2 + 0.5).clamp(0, 1)


def to_uint8(images) -> np.ndarray:
    """Any batch of images -> uint8 array N×H×W×C (C = 1 or 3).

    Accepts a PIL image or a list of them, a tensor B×C×H×W, an array B×H×W×C (C in {1, 3}) or B×H×W; float values
    must lie in [0, 1], uint8 values are taken as they are.

    Raises:
        ValueError: another shape, or float values outside [0, 1] (naming the range found).
    """
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not all(isinstance(im, Image.Image) for im in images):
            raise ValueError(f"a list of images must hold PIL images only, got {sorted({type(im).__name__ for im in images})}")
        arrays = [np.asarray(im.convert("L") if im.mode not in ("L", "RGB") else im) for im in images]
        return np.stack([a[..., None] if a.ndim == 2 else a for a in arrays]) if arrays else np.zeros((0, 1, 1, 1), np.uint8)
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    shape = tuple(array.shape)
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or min(array.shape[1:3]) < 1:
        raise ValueError(f"images have shape {shape}; expected B×1×H×W or B×3×H×W (tensor), B×H×W×1 or B×H×W×3 "
                         "(array), or B×H×W, with H, W >= 1")
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float32)
    if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
        raise ValueError(f"float images must be in [0, 1] (the pipeline's output range), got values in "
                         f"[{array.min():.3g}, {array.max():.3g}]; map model-range [-1, 1] tensors with "
                         "images.model_range_to_unit first")
    return (np.clip(array, 0, 1) * 255).round().astype(np.uint8)


def to_pil(images) -> list[Image.Image]:
    """Any batch of images (see `to_uint8`) -> PIL images, mode "L" for grey, "RGB" for colour."""
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in to_uint8(images)]


def to_rgb_pil(images) -> list[Image.Image]:
    """Any batch of images -> 3-channel RGB PIL images (grey copied to R, G and B), as CLIP's processor wants."""
    return [im.convert("RGB") for im in to_pil(images)]


def to_unit_tensor(images):
    """A tensor or array of grey images (N×1×H×W or N×H×W; float in [0, 1] or uint8) -> float tensor N×1×H×W in
    [0, 1] (no rounding: the judge and Inception see exactly what the pipeline returned)."""
    import torch

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor or numpy array, got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images have shape {tuple(images.shape)}; expected N×1×H×W or N×H×W grey images")
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
