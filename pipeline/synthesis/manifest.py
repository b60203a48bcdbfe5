"""The manifest `synthesize.json` (settings, fingerprint, command, stats), the per-shard timings behind its stats, and
the resume rule: which folders a run may write into."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from pathlib import Path

from ..io import TMP_PREFIX, atomic_write_text
from .plan import SEED_RULE, Shard, SynthesisError, canonical_settings

MANIFEST = "synthesize.json"
MANIFEST_VERSION = 1
VERSIONED = ("fashion-ddpm", "torch", "diffusers", "datasets", "huggingface_hub")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    """The manifest of a synthesize folder, or None when it has none."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(manifest, dict) and isinstance(manifest.get("settings"), dict)
    except (ValueError, AssertionError, UnicodeDecodeError):
        raise SynthesisError(f"{path} is not a synthesize manifest (invalid JSON or no settings); "
                             "give a new or empty folder") from None
    try:
        manifest["settings"] = canonical_settings(manifest["settings"])
    except ValueError as e:
        raise SynthesisError(f"{path}: {e}; give a new or empty folder") from None
    return manifest


def build_manifest(out_dir: Path, settings: dict, *, model: str | None, command: str | None, num_images: int,
                   num_shards: int, complete: bool, stats: dict | None = None) -> dict:
    """The manifest of a run; what the folder's manifest already holds (created, command, stats) is kept."""
    from importlib import metadata

    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    existing = read_manifest(out_dir) if (out_dir / MANIFEST).is_file() else None
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "settings": settings,
        "model": model,
        "command": command,
        "num_images": num_images,
        "num_shards": num_shards,
        "seed_rule": SEED_RULE,
        "created": (existing or {}).get("created") or _now(),
        "versions": {p: version(p) for p in VERSIONED},
        "complete": complete,
    }
    if existing is not None and existing.get("command") and not command:
        manifest["command"] = existing["command"]
    if stats is not None:
        manifest["stats"] = stats
    elif existing is not None and "stats" in existing:
        manifest["stats"] = existing["stats"]
    return manifest


def write_manifest(out_dir: Path, manifest: dict):
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def write_timing(work: Path, shard: Shard, timing: dict):
    """Records how long a shard's sampling took (images, seconds, torch_threads, device), for the manifest's stats."""
    (work / "timings").mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "timings" / f"{shard.name}.json", json.dumps(timing))


def timing_stats(work: Path, shards: list[Shard], num_images: int) -> dict:
    """Sampling time over the shards with a recorded timing (all of them unless a kill fell between files)."""
    timings = []
    for shard in shards:
        path = work / "timings" / f"{shard.name}.json"
        with contextlib.suppress(OSError, ValueError):
            timings.append(json.loads(path.read_text()))
    images = sum(t["images"] for t in timings)
    seconds = sum(t["seconds"] for t in timings)
    return {"images": num_images, "timed_images": images, "sampling_seconds": round(seconds, 3),
            "seconds_per_image": round(seconds / images, 6) if images else None,
            "torch_threads": sorted({t["torch_threads"] for t in timings}),
            "devices": sorted({t["device"] for t in timings}),
            "finished": _now()}


def _describe_difference(old: dict, new: dict) -> str:
    def show(key, value):
        return f"{value[:12]}..." if key == "model_sha256" and isinstance(value, str) else repr(value)

    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {show(k, old.get(k))} there, {show(k, new.get(k))} now" for k in keys if old.get(k) != new.get(k))


def check_out_dir(out_dir: Path, settings: dict) -> str:
    """"new" (absent or empty), "resume" (an unfinished run of the same settings) or "complete" (a finished one).

    Raises:
        SynthesisError: a file, or a non-empty folder that is not a synthesize run of exactly these settings.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthesisError(f"output folder {out_dir} is a file; give a folder")
    if not out_dir.exists() or not [p for p in out_dir.iterdir() if not p.name.startswith(TMP_PREFIX)]:
        return "new"
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise SynthesisError(f"output folder {out_dir} is not empty and holds no synthesize run ({MANIFEST}); "
                             "give a new or empty folder")
    if manifest["settings"] != settings:
        raise SynthesisError(f"output folder {out_dir} holds a synthesize run with other settings "
                             f"({_describe_difference(manifest['settings'], settings)}); rerun with its settings to "
                             "resume it, or give a new or empty folder")
    return "complete" if manifest.get("complete") else "resume"
