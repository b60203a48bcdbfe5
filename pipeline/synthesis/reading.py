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


def push_dataset(out_dir: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Uploads a finished synthesize folder to a Hub dataset repo: the card rendered for `repo_id` first, then the data
    (`Dataset.push_to_hub` adds its dataset_info to the card's YAML). Returns the repo's URL.

    Raises:
        SynthesisError: the folder holds no finished run.
        HubAccessError: a bad id, no token, or the upload failed (one line naming the repo and the cause).
    """
    from ..hub import check_repo_id, hub_url, reported, resolve_token
    from .card import dataset_card

    check_repo_id(repo_id, "--push-to-hub")
    token = resolve_token(token)
    out = Path(out_dir)
    dataset = load_synthetic(out)
    card = dataset_card(read_manifest(out), repo_id=repo_id)
    from huggingface_hub import HfApi

    with reported(repo_id), quiet_datasets():
        HfApi(token=token).create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        card.push_to_hub(repo_id, token=token, repo_type="dataset", commit_message="Dataset card (fashion-ddpm synthesize)")
        dataset.push_to_hub(repo_id, split="train", token=token,
                            commit_message="Upload synthetic images (fashion-ddpm synthesize)")
    return hub_url(repo_id, "dataset")
