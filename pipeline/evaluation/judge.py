"""The "judge": a small CNN Fashion-MNIST classifier that this project trains itself (`scripts/train_judge.py`).

It scores generated images in two ways:

* its class predictions give the accuracy of generated images (does a "Sneaker" sample look like a sneaker?);
* its penultimate layer (128-d) gives features for a "judge-FID" (same Fréchet code as the Inception FID), a cheap
  FID in a feature space that knows Fashion-MNIST.

The weights ship with the package as `pipeline/weights/judge.safetensors`, beside `judge.json` (config, measured
test accuracy overall and per class, training facts).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import atomic_write_json

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
JUDGE_WEIGHTS = WEIGHTS_DIR / "judge.safetensors"
JUDGE_INFO = WEIGHTS_DIR / "judge.json"

DEFAULT_JUDGE_CONFIG = {"channels": [16, 32, 64], "feature_dim": 128, "dropout": 0.2, "num_classes": 10}
# Fashion-MNIST training-set pixel mean / std (of [0, 1] images); the judge normalises its input with them.
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


def check_images(images, what: str = "images") -> torch.Tensor:
    """A batch of 28×28 grey images in [0, 1] (tensor or array, N×1×28×28 or N×28×28, float or uint8) as a float
    N×1×28×28 tensor; anything else is a ValueError naming the shape."""
    from ..images import to_unit_tensor

    shape = tuple(getattr(images, "shape", ()))
    try:
        images = to_unit_tensor(images)
    except ValueError:
        images = None
    if images is None or tuple(images.shape[2:]) != (28, 28):
        raise ValueError(f"{what} have shape {shape}; expected N×1×28×28 or N×28×28 grayscale images in [0, 1]")
    return images


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FashionJudge(nn.Module):
    """conv(c1)×2 → pool → conv(c2)×2 → pool → conv(c3) → pool(3×3) → fc(128) [features] → dropout → fc(10),
    every conv and the fc followed by BatchNorm + ReLU.

    With the default channels (16, 32, 64): about 110k parameters. Input: N×1×28×28 images in [0, 1].
    """

    def __init__(self, channels=(16, 32, 64), feature_dim: int = 128, dropout: float = 0.2, num_classes: int = 10):
        super().__init__()
        self.config = {"channels": list(channels), "feature_dim": feature_dim, "dropout": dropout,
                       "num_classes": num_classes}
        c1, c2, c3 = channels
        self.body = nn.Sequential(
            *_conv_bn(1, c1), *_conv_bn(c1, c1), nn.MaxPool2d(2),  # 28 -> 14
            *_conv_bn(c1, c2), *_conv_bn(c2, c2), nn.MaxPool2d(2),  # 14 -> 7
            *_conv_bn(c2, c3), nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(),
            nn.Linear(c3 * 9, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits N×num_classes for [0, 1] images N×1×28×28."""
        return self.head(self.features(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features N×feature_dim (the judge-FID feature space)."""
        return self.body((images - PIXEL_MEAN) / PIXEL_STD)

    # ------------------------------------------------------------------ inference helpers
    @torch.no_grad()
    def predict(self, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Returns (predicted class ids, features) for [0, 1] images (N×1×28×28 or N×28×28), in eval mode."""
        images = check_images(images)
        was_training = self.training
        self.eval()
        preds, feats = [], []
        device = next(self.parameters()).device
        for start in range(0, len(images), batch_size):
            f = self.features(images[start:start + batch_size].to(device))
            preds.append(self.head(f).argmax(1).cpu())
            feats.append(f.cpu())
        self.train(was_training)
        return torch.cat(preds).numpy(), torch.cat(feats).double().numpy()

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path = JUDGE_WEIGHTS, info: dict | None = None):
        """Writes safetensors weights and, beside them, a JSON with the config plus `info` (accuracy, training)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata={"config": json.dumps(self.config)})
        atomic_write_json(path.with_suffix(".json"), {"config": self.config, **(info or {})})

    @classmethod
    def load(cls, path: str | Path = JUDGE_WEIGHTS, device: str | torch.device = "cpu") -> FashionJudge:
        """Loads weights written by `save` (the shipped judge by default), in eval mode."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"judge weights {path} not found; train them with `python scripts/train_judge.py`")
        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {}).get("config", "{}")) or DEFAULT_JUDGE_CONFIG
        model = cls(**config)
        model.load_state_dict(load_file(str(path), device="cpu"))
        return model.to(device).eval()


def judge_fingerprint(path: str | Path = JUDGE_WEIGHTS) -> str:
    """Short hash of the judge's weights file, so cached statistics are recomputed after retraining."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def judge_info(path: str | Path = JUDGE_WEIGHTS) -> dict:
    """The JSON written beside the weights (config, measured test accuracy), or {} when absent."""
    info_path = Path(path).with_suffix(".json")
    return json.loads(info_path.read_text()) if info_path.is_file() else {}
