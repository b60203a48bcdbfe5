"""Whole-or-nothing file updates shared by training and distillation: an export moved into its run folder, and the
metrics log cut back to a resumed run's step."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def move_into(tmp: Path, folder: Path):
    """Moves every item of the finished folder `tmp` into `folder` (each one replaced by a rename), then removes `tmp`."""
    for item in tmp.iterdir():
        target = folder / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()


def trim_rows(path: Path, step: int):
    """After a resume, drops the logged rows of the updates about to be redone (`step` and before stay)."""
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(r + "\n" for r in rows))
        os.replace(tmp, path)
