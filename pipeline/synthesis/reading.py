"""Reading and sharing a finished synthesize folder."""

from __future__ import annotations

import os
from pathlib import Path

from .files import quiet_datasets
from .manifest import read_manifest
from .plan import SynthesisError
from .writers import writer_for


def load_synthetic(out_dir: str | os.PathLike):
    """The `datasets.Dataset` of a finished synthesize folder, whatever its format."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    if manifest is None or not manifest.get("complete"):
        raise SynthesisError(f"{out} holds no finished synthesize run; run (or rerun) `fashion-ddpm synthesize` on it")
    with quiet_datasets():
        return writer_for(out, manifest["settings"]).load()


def push_dataset(out_dir: str | os.PathLike, repo_id: str, token: str | None = None) -> str:
    """Uploads a finished synthesize folder to a Hub dataset repo: the card first, then the data (`Dataset.push_to_hub`
    adds its dataset_info to the card's YAML). Returns the repo's URL."""
    from huggingface_hub import DatasetCard, HfApi

    out = Path(out_dir)
    dataset = load_synthetic(out)
    HfApi(token=token).create_repo(repo_id, repo_type="dataset", exist_ok=True)
    DatasetCard((out / "README.md").read_text(encoding="utf-8")).push_to_hub(
        repo_id, token=token, repo_type="dataset", commit_message="Dataset card (fashion-ddpm synthesize)")
    dataset.push_to_hub(repo_id, split="train", token=token, commit_message="Upload synthetic images (fashion-ddpm synthesize)")
    return f"https://huggingface.co/datasets/{repo_id}"
