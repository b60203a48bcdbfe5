"""A training run's metrics.jsonl and its loss curve: read by training (its card's plot) and by `visualize`, so it lies
below both."""

from __future__ import annotations

import json
from pathlib import Path

from .checks import is_number


def read_metrics(path: str | Path, what: str = "metrics file") -> list[dict]:
    """The rows of a run's metrics.jsonl (one JSON object per line, each with a numeric "step" and "loss").

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file and the first bad line, and what a line must hold.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist (expected a run's metrics.jsonl)")
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file; expected a run's metrics.jsonl (one JSON object per line)") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and all(is_number(row.get(k)) for k in ("step", "loss"))
        except ValueError:
            ok = False
        if not ok:
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise ValueError(f"{path}, line {number}: {shown!r} is not a metrics row; expected a JSON object with numeric "
                             '"step" and "loss" (a training run\'s metrics.jsonl)')
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no metrics rows; expected a training run's metrics.jsonl")
    return rows


def plot_loss_curve(metrics_path: str | Path, out_path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    steps, losses = [r["step"] for r in rows], [r["loss"] for r in rows]
    window = max(1, len(losses) // 20)
    smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1]) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(steps, losses, color="0.75", linewidth=0.8, label="loss (logged)")
    ax.plot(steps, smooth, color="C0", linewidth=1.6, label=f"running mean ({window})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("MSE loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Training loss")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path
