"""Style attributes measured on images, the way Morpho-MNIST (Castro et al. 2019) measures digits: one definition used
for training labels, evaluation, dataset columns and the demo. numpy, SciPy and scikit-image only (no torch).

Each 28×28 uint8 image is reduced to its item's mask (pixels above `MASK_LEVEL`) and measured:

    width, height   extent of the mask's bounding box, in pixels
    area            pixels in the mask
    slant           arctan(−μ11 / μ02) of the intensity's central moments, in radians (> 0: the top leans right)
    thickness       2 × the mean distance to the background along the mask's medial axis, minus one pixel: the
                    width of a bar (Morpho-MNIST's stroke thickness; for a filled garment, its narrowest span)
    brightness      mean intensity inside the mask, in [0, 1]: light vs dark
    pattern         mean |Laplacian| of the intensity inside the mask's interior (its outline excluded), in
                    intensity units: plain vs patterned (stripes, prints, text, seams)

An empty image has NaN for every attribute.
"""

from __future__ import annotations

import numpy as np

ATTRIBUTES = ("width", "height", "area", "slant", "thickness", "brightness", "pattern")
MASK_LEVEL = 0.1  # of full intensity: Fashion-MNIST's background is black (0), its items rarely that dark


def measure(images) -> dict[str, np.ndarray]:
    """The attributes of a batch of uint8 images (N, H, W) (or one (H, W) image): {name: float array (N,)}."""
    from scipy import ndimage
    from skimage.measure import moments_central
    from skimage.morphology import skeletonize

    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (N, H, W) or (H, W), got {images.dtype} {images.shape}")
    out = {name: np.full(len(images), np.nan) for name in ATTRIBUTES}
    for i, image in enumerate(images):
        x = image.astype(np.float64) / 255.0
        mask = x > MASK_LEVEL
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask)
        out["width"][i] = cols.max() - cols.min() + 1
        out["height"][i] = rows.max() - rows.min() + 1
        out["area"][i] = mask.sum()
        mu = moments_central(x)  # mu[p, q] = sum (row - r̄)^p (col - c̄)^q x: p along rows (y), q along columns (x)
        out["slant"][i] = np.arctan(-mu[1, 1] / mu[2, 0]) if mu[2, 0] > 0 else 0.0
        skeleton = skeletonize(mask)
        distance = ndimage.distance_transform_edt(mask)
        out["thickness"][i] = 2 * distance[skeleton].mean() - 1 if skeleton.any() else 1.0
        out["brightness"][i] = x[mask].mean()
        interior = ndimage.binary_erosion(mask, iterations=1)
        out["pattern"][i] = np.abs(ndimage.laplace(x))[interior].mean() if interior.any() else 0.0
    return out
