"""CLIP-guided best-of-N: generate a pool of images per class, keep the ones CLIP rates best (`clip.ClipScorer`).

    >>> result = best_of_n(pipe, load_clip("openai/clip-vit-base-patch32"), pool=15, keep=3)
    >>> result.kept_images[7]        # the 3 best sneakers, best first
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..checks import check_int, is_int
from ..images import labelled_grid
from ..io import atomic_save_image, atomic_write_json
from ..sampling import generate
from .clip import ClipScorer, ClipScores, write_csv


@dataclass
class BestOfN:
    """Result of CLIP-guided best-of-N: `kept[c]` are indices into `scores` (best first) for class c."""

    scores: ClipScores
    kept: dict[int, list[int]]
    keep: int
    paths: dict = field(default_factory=dict, repr=False)  # files written by save()

    @property
    def kept_images(self) -> dict[int, list[Image.Image]]:
        return {c: [self.scores.images[i] for i in idx] for c, idx in self.kept.items()}

    @property
    def kept_index(self) -> np.ndarray:
        return np.asarray([i for idx in self.kept.values() for i in idx], dtype=np.int64)

    def rows(self) -> list[dict]:
        rank = {}
        for c in self.kept:
            rank.update({int(i): r + 1 for r, i in enumerate(self.scores.ranking(c))})
        kept = set(self.kept_index.tolist())
        return [{**row, "rank_in_class": rank[row["index"]], "kept": row["index"] in kept} for row in self.scores.rows()]

    def summary(self) -> dict:
        classes = []
        for c, idx in self.kept.items():
            pool = np.flatnonzero(self.scores.labels == c)
            classes.append({
                "class_id": c, "class_name": self.scores.class_names[c], "pool": int(len(pool)),
                "kept_index": [int(i) for i in idx], "kept_quality": [float(self.scores.quality[i]) for i in idx],
                "pool_quality_mean": float(self.scores.quality[pool].mean()),
                "kept_quality_mean": float(self.scores.quality[idx].mean()),
                "pool_zero_shot_agreement": float(self.scores.zero_shot_correct[pool].mean()),
                "kept_zero_shot_agreement": float(self.scores.zero_shot_correct[idx].mean()),
            })
        return {"clip_model": self.scores.clip_model, "templates": list(self.scores.templates), "keep": self.keep,
                "quality": "p_good + p_clear - p_blurry", "classes": classes}

    def save(self, out_dir: str | Path, extra: dict | None = None) -> dict[str, Path]:
        """Writes best_of_n.png (kept, best first), best_of_n_pool.png (whole pool, ranked), best_of_n_scores.csv
        (every pool image with rank and kept flag) and best_of_n.json."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = [self.scores.class_names[c] for c in self.kept]
        kept_rows = [self.kept_images[c] for c in self.kept]
        pool_rows = [[self.scores.images[i] for i in self.scores.ranking(c)] for c in self.kept]
        kept_grid = labelled_grid(kept_rows, names, [f"best {j + 1}" for j in range(self.keep)], scale=3,
                                  title=f"CLIP best-of-N: top {self.keep} by quality")
        pool_grid = labelled_grid(pool_rows, names, scale=2, title="whole pool ranked by CLIP quality (best left)")
        paths = {"png": atomic_save_image(kept_grid, out / "best_of_n.png"),
                 "pool_png": atomic_save_image(pool_grid, out / "best_of_n_pool.png")}
        paths["csv"] = write_csv(self.rows(), out / "best_of_n_scores.csv")
        paths["json"] = atomic_write_json(out / "best_of_n.json", {**self.summary(), **(extra or {})}, allow_nan=False)
        self.paths = paths
        return paths


def best_of_n_images(scorer: ClipScorer, images, labels, class_names: Sequence[str], keep: int = 3) -> BestOfN:
    """Scores a pool of images and keeps the `keep` best (by quality) of every class present in `labels`
    (`kept` is ordered by first appearance of each class)."""
    check_int(keep, "keep")
    scores = scorer.score(images, labels, class_names)
    present = list(dict.fromkeys(scores.labels.tolist()))  # classes in order of first appearance
    kept = {c: [int(i) for i in scores.ranking(c)[:keep]] for c in present}
    return BestOfN(scores, kept, keep)


def best_of_n(pipe, scorer: ClipScorer, pool: int = 15, keep: int = 3, class_labels=None, seed: int = 0,
              out_dir: str | Path | None = None, **sampling) -> BestOfN:
    """Generates `pool` images per class with `pipe`, keeps the top `keep` by CLIP quality (saved with `out_dir`)."""
    check_int(pool, "pool")
    if not is_int(keep) or not 1 <= keep <= pool:
        raise ValueError(f"keep must be an int in 1..pool ({pool}), got {keep!r}")
    samples = generate(pipe, class_labels, pool, seed, **sampling)
    result = best_of_n_images(scorer, samples.images, samples.class_ids, pipe.class_names, keep)
    if out_dir is not None:
        result.save(out_dir, extra={"pool": pool, "seed": seed, "sampling": samples.settings.to_json()})
    return result
