"""Shared helpers for the benchmark scripts: machine description, statistics, JSON + Markdown output.

Deliberately light (no torch / diffusers import at module level) so that a parent process that only orchestrates
worker subprocesses starts quickly.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED_MODEL_DIR = REPO / "pretrained" / "fashion-ddpm-gpu"  # the default model (pipeline.models.SHIPPED_MODEL_NAME)


def _tiny_unet() -> dict:
    import yaml

    return yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())["unet"]


TINY_UNET = _tiny_unet()  # the one tiny U-Net of every smoke run (configs/tiny.yaml's, as the tests build)


def repo_relative(path: str) -> str:
    """A path as committed results name it: relative to the repository when inside it."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def ensure_repo_on_path():
    """Lets `python benchmarks/x.py` import `pipeline` from this checkout even when it is not pip-installed."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(torch_threads: int | None = None) -> dict:
    """CPU, cores, library versions, torch threads and the date: enough to tell two result files apart."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_version": _version("torch"),
        "torch_threads": torch_threads,
        "diffusers_version": _version("diffusers"),
        "accelerate_version": _version("accelerate"),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if "torch" in sys.modules:  # the exact build in this process (e.g. 2.13.0+cpu)
        info["torch_version"] = sys.modules["torch"].__version__
    if "diffusers" in sys.modules:
        info["diffusers_version"] = sys.modules["diffusers"].__version__
    if hasattr(os, "getloadavg"):
        info["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
    return info


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def median(values) -> float:
    return float(statistics.median(values))


def device_label(device: str) -> str:
    """What a result file names as its device: the GPU's name (e.g. NVIDIA H200) for cuda devices, else the device."""
    if not device.startswith("cuda"):
        return device
    import torch

    return torch.cuda.get_device_name(device)


def machine_markdown(machine: dict) -> str:
    keys = ["device", "cpu_model", "cpu_count", "usable_cores", "torch_version", "torch_threads", "diffusers_version",
            "accelerate_version", "python_version", "date", "load_average_1m_at_start", "load_average_1m_at_end"]
    return "\n".join(f"- {k}: {machine[k]}" for k in keys if k in machine)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(name: str, result: dict, markdown: str, out_dir: str | None):
    """Prints the JSON and the Markdown; with --out writes <out>/<name>.json and <out>/<name>.md."""
    text = json.dumps(result, indent=2)
    print(text)
    print()
    print(markdown)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(text + "\n")
        (out / f"{name}.md").write_text(markdown + "\n")
        print(f"\nwrote {out / (name + '.json')} and {out / (name + '.md')}", file=sys.stderr)
