"""Files that are complete or absent: everything is written to a temporary name and renamed (os.replace)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

WORK_DIR = ".synthesize"  # bookkeeping of an unfinished run (hidden: `datasets` ignores it)
TMP_PREFIX = ".tmp-"


def temporary(path: Path) -> Path:
    """Where `path` is written before its rename: a hidden name of this process, beside it."""
    return path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")


def atomic_write_text(path: Path, text: str):
    tmp = temporary(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_write_parquet(table, path: Path):
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    pq.write_table(table, tmp, row_group_size=100)  # small row groups: what the Hub's viewer wants for images
    os.replace(tmp, path)


def remove_temporaries(folder: Path):
    """Half-written files a killed run left behind (never read: only renamed files count)."""
    if folder.is_dir():
        for path in folder.rglob(f"{TMP_PREFIX}*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


@contextlib.contextmanager
def quiet_datasets():
    """No "Generating train split" / "Saving the dataset" bars from `datasets` under our own progress bar."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
