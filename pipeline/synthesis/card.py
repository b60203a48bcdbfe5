"""The dataset card README.md: the Hub's YAML header (huggingface_hub.DatasetCardData) and text from the Jinja template
dataset_card_template.md beside this file."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from ..io import atomic_write_text
from ..settings import SamplingSettings
from .plan import SEED_RULE
from .writers import WRITERS

TEMPLATE = Path(__file__).with_name("dataset_card_template.md")
PRETTY_NAME = "Synthetic Fashion-MNIST (fashion-ddpm)"
TAGS = ["synthetic", "diffusers", "fashion-ddpm", "fashion-mnist", "image"]
FROM_PYTHON = "(called from Python: pipeline.synthesis.synthesize)"


def size_category(n: int) -> str:
    """The Hub's size_categories bucket of n rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def dataset_card(manifest: dict, repo_id: str | None = None):
    """The dataset card (huggingface_hub.DatasetCard) of a synthesize run; with `repo_id`, its "Use" section loads that
    Hub repo and the model is named by its Hub id or, for a local folder, by the folder's name (no machine's path)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    s = manifest["settings"]
    n = manifest["num_images"]
    writer = WRITERS[s["format"]]
    card_data = DatasetCardData(license="mit", task_categories=["image-classification"],
                                task_ids=["multi-class-image-classification"], annotations_creators=["machine-generated"],
                                size_categories=[size_category(n)], pretty_name=PRETTY_NAME, tags=list(TAGS),
                                **copy.deepcopy(writer.card_yaml))
    sampling = SamplingSettings.from_json(s)
    names = s["class_names"]
    model = manifest.get("model") or "?"
    command = manifest.get("command") or FROM_PYTHON
    if repo_id is not None:  # on the Hub, no path of the machine that made it: a local model by its folder's name
        if Path(model).is_absolute() or Path(model).exists():
            command = command.replace(model, Path(model).name)
            model = Path(model).name
        command = re.sub(r"--out \S+", "--out DIR", command)
    load_code = (f'from datasets import load_dataset\nds = load_dataset("{repo_id}", split="train")' if repo_id
                 else writer.load_code)
    return DatasetCard.from_template(
        card_data, template_path=str(TEMPLATE), pretty_name=PRETTY_NAME, num_images=f"{n:,}", height=28, width=28,
        per_class=f"{s['per_class']:,}", num_classes=len(s["class_ids"]), model=model,
        model_sha256=s["model_sha256"][:16], settings=sampling.describe(), label=sampling.label(), seed=s["seed"],
        seed_rule=SEED_RULE, classes=", ".join(f"{c} {names[c]}" for c in s["class_ids"]), format=s["format"],
        command=command, load_code=load_code,
        class_names="\n".join(f"- {i}: {name}" for i, name in enumerate(names)),
    )


def write_dataset_card(out_dir: Path, manifest: dict) -> Path:
    """README.md with the Hub's YAML header (huggingface_hub.DatasetCard), written atomically."""
    path = Path(out_dir) / "README.md"
    atomic_write_text(path, str(dataset_card(manifest)))
    return path
