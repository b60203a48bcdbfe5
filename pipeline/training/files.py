"""The metrics log cut back to a resumed run's step (training and distillation), written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_write_text


def trim_rows(path: Path, step: int):
    """After a resume, drops the logged rows of the updates about to be redone (`step` and before stay)."""
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        atomic_write_text(path, "".join(r + "\n" for r in rows))
