"""Files that are complete or absent: every file the package writes goes to a temporary name beside its target and is
renamed over it (`os.replace`, atomic on one file system), so a killed process leaves the old file or the new one,
never half of one. One module for it, used everywhere (the two files copied beside the weights excepted).

    atomic_write_text(path, text)      atomic_write_bytes(path, data)      atomic_write_json(path, data)
    with atomic_path(path) as tmp: np.savez(tmp, ...)   # any writer that takes a path or a file
    atomic_save_image(image, path)     # a PIL image in the format its suffix names
    with staged_folder(folder) as tmp: pipe.save_pretrained(tmp)   # a folder built aside, moved in item by item
    with staged_folder(folder, whole=True) as tmp: ...                # ... or replacing the folder whole
    remove_temporaries(folder)         # what a killed writer left behind
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

TMP_PREFIX = ".tmp-"  # temporary names start with it; readers skip them and `remove_temporaries` deletes them


def temporary(path: str | os.PathLike) -> Path:
    """Where `path` is written before its rename: a hidden name of this process, beside it."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields the temporary path to write `path` at (its folder created); renames it over `path` when the block ends
    without an error, removes it when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data, **dump_options) -> Path:
    """`data` as indented JSON with a final newline (`dump_options` go to json.dumps, e.g. allow_nan=False)."""
    return atomic_write_text(path, json.dumps(data, indent=2, **dump_options) + "\n")


def atomic_save_image(image, path: str | os.PathLike, **options) -> Path:
    """A PIL image written whole or not at all, in the format its suffix names (the temporary name has no suffix
    PIL could read it from); `options` go to `image.save` (e.g. save_all=True for an animated GIF)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        image.save(tmp, format=Image.registered_extensions()[Path(path).suffix.lower()], **options)
    return Path(path)


def move_into(tmp: Path, folder: Path, last: str | None = None):
    """Moves every item of the finished folder `tmp` into `folder` (each one replaced by a rename), the item named
    `last` after the others (the file a reader checks for completeness), then removes `tmp`."""
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == last):
        target = folder / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike, whole: bool = False):
    """Yields an empty temporary folder to build `folder`'s content in. When the block ends without an error the
    content lands in `folder`: item by item over what it holds (`move_into`), or with `whole` replacing `folder`
    entirely. When the block raises, the temporary folder is removed and `folder` is as it was."""
    folder = Path(folder)
    tmp = temporary(folder) if whole else folder / f"{TMP_PREFIX}staged-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if whole:
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        else:
            move_into(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_temporaries(folder: Path):
    """Half-written files a killed writer left behind (never read: only renamed files count)."""
    if folder.is_dir():
        for path in folder.rglob(f"{TMP_PREFIX}*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
