"""What a synthesize folder's files need beyond `pipeline.io` (where every file is written complete or not at all):
the hidden bookkeeping folder, Parquet shards, and `datasets` kept quiet under our own progress bar."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..io import atomic_path

WORK_DIR = ".synthesize"  # bookkeeping of an unfinished run (hidden: `datasets` ignores it)


def atomic_write_parquet(table, path: Path):
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=100)  # small row groups: what the Hub's viewer wants for images


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
