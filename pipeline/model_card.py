"""Fills the model card template (Hub YAML metadata + training facts) and its metrics section."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).with_name("model_card_template.md")
METRICS = re.compile(r"<!-- metrics:start -->.*?<!-- metrics:end -->", re.S)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def write_model_card(folder: str | Path, config: dict, stats: dict, sample_grid: str, loss_curve: str,
                     repo_id: str) -> Path:
    """Writes `folder/README.md` (the Hub's model card file) from the template; `repo_id` (a Hub id or a folder) is
    what the card's usage example loads."""
    from .pipeline_fashion_ddpm import FASHION_MNIST_CLASSES

    loss = stats.get("final_loss")
    values = {
        "description": config.get("description") or "Trained with `train_conditional.py` from fashion-ddpm.",
        "repo_id": repo_id,
        "guidance": config.get("sample_guidance_scale", 3.0),
        "class_names": ", ".join(FASHION_MNIST_CLASSES),
        "sample_grid": sample_grid,
        "loss_curve": loss_curve,
        "data_source": stats["data_source"],
        "num_train_images": f"{stats['num_train_images']:,}",
        "steps": f"{stats['steps']:,}",
        "images_seen": f"{stats['images_seen']:,}",
        "epochs": stats["epochs"],
        "wall_time": _duration(stats["wall_time_s"]),
        "hardware": stats["hardware"],
        "final_loss": "n/a" if loss is None else f"{loss:.4f}",
        "config_yaml": yaml.safe_dump(config, sort_keys=False).strip(),
    }
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    path = Path(folder) / "README.md"
    path.write_text(text)
    return path


def fill_metrics(card_path: str | Path, markdown: str) -> Path:
    """Replaces the metrics section of a written model card with `markdown`."""
    card_path = Path(card_path)
    text = card_path.read_text()
    if not METRICS.search(text):
        raise ValueError(f"{card_path} has no <!-- metrics:start --> ... <!-- metrics:end --> section to fill")
    card_path.write_text(METRICS.sub(lambda _: f"<!-- metrics:start -->\n{markdown.strip()}\n<!-- metrics:end -->", text))
    return card_path
