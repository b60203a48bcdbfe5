"""How cards and results pages state a run's cost: its wall time and its weights' size.

    duration(4000)                 # '1 h 06 min'; under an hour: '12 min 05 s'
    weights_parameters(path)       # the parameters in a .safetensors file, read from its header alone

Torch-free, so a page renders without loading a tensor.
"""

from __future__ import annotations

import json
import math
import os


def duration(seconds: float) -> str:
    """'1 h 06 min' from an hour up, else '12 min 05 s'."""
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def weights_parameters(weights: str | os.PathLike) -> int:
    """The number of parameters in a safetensors file, from its header (no tensors loaded)."""
    with open(weights, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
