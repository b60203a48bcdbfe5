"""Kill-safe training checkpoints on top of `accelerator.save_state`.

A checkpoint is written into `.tmp-checkpoint-<step>` and renamed to `checkpoint-<step>` only once complete (a rename
is atomic), so a process killed mid-write leaves at worst a temporary folder, which is ignored and cleaned up.
`training_state.json` is written last inside the temporary folder; a checkpoint without it is incomplete.

Why not Accelerate's `ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=K)`: it saves straight into
the final `checkpoint_<i>` folder and counts saves rather than optimizer steps, so a process killed mid-save leaves a
partial checkpoint that a resume would take, and the step a checkpoint holds is not in its name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)
STATE_FILE = "training_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Finished checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def save_checkpoint(accelerator, root: str | os.PathLike, step: int, total_limit: int, extra: dict | None = None) -> Path:
    root = Path(root)
    final, tmp = root / f"checkpoint-{step}", root / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(tmp / STATE_FILE, "w") as f:
            json.dump({"step": step, **(extra or {})}, f)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        for old in list_checkpoints(root)[:-total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def read_state(checkpoint: Path) -> dict:
    with open(checkpoint / STATE_FILE) as f:
        state = json.load(f)
    if not isinstance(state.get("step"), int):
        raise ValueError(f"{checkpoint / STATE_FILE} has no integer 'step'")
    return state


def resume(accelerator, root: str | os.PathLike, which: str) -> dict | None:
    """Loads `which` ("latest" or a checkpoint folder) into the accelerator; returns its training state.

    With "latest", a partial or corrupt checkpoint is skipped with a warning naming it and the one before is tried.
    Returns None when "latest" finds no usable checkpoint (training starts from scratch).
    """
    if which != "latest":
        path = Path(which)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume_from_checkpoint {which}: no such checkpoint folder")
        state = read_state(path)
        accelerator.load_state(str(path))
        return state
    for path in reversed(list_checkpoints(root)):
        try:
            state = read_state(path)
            accelerator.load_state(str(path))
            return state
        except Exception as e:  # truncated / missing files: fall back to the previous checkpoint
            if accelerator.is_main_process:
                logger.warning("skipping checkpoint %s: it is partial or corrupt (%s: %s)", path, type(e).__name__, e)
    return None


def remove_partial(root: str | os.PathLike):
    """Deletes temporary folders left by a process killed while saving."""
    for p in Path(root).glob(".tmp-checkpoint-*") if Path(root).is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
