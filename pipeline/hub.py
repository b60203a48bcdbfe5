"""The Hugging Face Hub: every upload goes through here (`fashion-ddpm push`, training's `--push_to_hub`, distillation's
`push_to_hub`, `synthesize --push-to-hub`), and fails before any work when it cannot succeed.

Light on purpose (huggingface_hub is imported inside the functions): training and `fashion-ddpm synthesize` call
`check_hub_access` before they load data or generate a single image.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .io import atomic_write_text

logger = logging.getLogger("fashion_ddpm.hub")

# What an exported folder holds that is not part of the model (names at any depth, left out of the staged copy that
# is uploaded): training checkpoints and logs, temporary files, intermediate sample grids (samples/step-*), the
# side-by-side EMAs (ema-power-*, config ema_extra_powers), bytecode.
NOT_UPLOADED = ("checkpoints", "logs", ".tmp*", "step-*", "ema-power-*", "__pycache__", "*.pyc")


class HubAccessError(ValueError):
    """An upload to the Hub that cannot succeed (no id, a malformed id, no token, refused, no network); one line says
    which."""


def hub_url(repo_id: str, repo_type: str = "model", revision: str | None = None) -> str:
    """The repo's page on the Hub this process talks to ($HF_ENDPOINT or huggingface.co)."""
    from huggingface_hub import constants

    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    url = f"{constants.ENDPOINT.rstrip('/')}/{prefix}{repo_id}"
    return f"{url}/tree/{revision}" if revision and revision != "main" else url


def check_repo_id(repo_id: str | None, flag: str = "--repo-id") -> str:
    """`repo_id` if it is a Hub repo id `user/name` (huggingface_hub's own rule), else HubAccessError."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not repo_id:
        raise HubAccessError(f"{flag} needs a Hub repo id user/name")
    try:
        validate_repo_id(repo_id)
        valid = str(repo_id).count("/") == 1
    except HFValidationError:
        valid = False
    if not valid:
        raise HubAccessError(f"{flag} {repo_id!r} is not a Hub repo id; give user/name (letters, digits, - _ .)")
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The token an upload uses: `token` (--token), else $HF_TOKEN, else the saved login (`hf auth login`)."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubAccessError("no Hub token: pass --token, set HF_TOKEN, or run `hf auth login`")
    return token


def check_hub_access(repo_id: str | None, token: str | None = None, flag: str = "--push_to_hub",
                     id_flag: str = "--hub_model_id") -> str:
    """Fails now when pushing to `repo_id` cannot work; returns the logged-in user's name.

    Args:
        repo_id: user/name on the Hub.
        token: a Hub token; None = $HF_TOKEN, else the saved login.
        flag / id_flag: how the calling command names the push option and the id option (for the message).

    Raises:
        HubAccessError: no or malformed id, no token, a token the Hub refuses, offline (HF_HUB_OFFLINE) or no network.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id, id_flag if not repo_id else flag)
    try:
        token = resolve_token(token)
    except HubAccessError as e:
        raise HubAccessError(f"{flag}: {e}") from None
    try:
        user = HfApi(token=token).whoami()
    except Exception as e:  # refused token, offline mode, no network: all end the same way, in one line
        raise HubAccessError(f"{flag}: cannot reach the Hugging Face Hub as a logged-in user ({cause(e)}). "
                             f"Run `hf auth login` or set HF_TOKEN, check the network, or drop {flag}.") from None
    logger.info("will push to %s as %s", repo_id, user.get("name"))
    return user.get("name") or ""


def cause(error: Exception) -> str:
    """One line saying why a Hub call failed: the HTTP status and the server's message, or the transport error."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        message = response.headers.get("X-Error-Message") or getattr(response, "reason_phrase", "") or ""
        return f"HTTP {status}{': ' + message if message else ''}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@contextlib.contextmanager
def reported(repo_id: str, action: str = "push to"):
    """Turns any failure of the Hub calls inside into one HubAccessError line naming the repo and the cause."""
    try:
        yield
    except HubAccessError:
        raise
    except Exception as e:  # HTTP errors, lost connections, refused writes
        raise HubAccessError(f"{action} {repo_id} failed: {cause(e)}") from None


def parent_model(folder: Path) -> str | None:
    """The model a folder was fine-tuned or distilled from, as its training recorded it (None: trained from scratch)."""
    for name, key in (("train_config.json", "init_from"), ("distill.json", "teacher")):
        path = folder / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
            if value:
                return str(value)
    return None


def base_model_id(parent: str | None, repo_id: str, base_model: str | None, api, flag: str = "--base-model") -> str | None:
    """The Hub id of a model's parent (`parent_model`): `base_model` if given; else the parent's folder name in the
    pushed repo's namespace (a parent pushed first), else the parent itself when it was loaded from the Hub; it must
    exist there. None for a model trained from scratch."""
    if base_model is not None:
        return check_repo_id(base_model, flag)
    if parent is None:
        return None
    candidates = [f"{repo_id.split('/')[0]}/{Path(parent).name}"]
    if parent.count("/") == 1 and not os.path.isdir(parent):
        candidates.append(parent)
    for candidate in candidates:
        with reported(candidate, "looking up the parent model"):
            if api.repo_exists(candidate):
                return candidate
    raise HubAccessError(f"the model is fine-tuned or distilled from {parent}: push that model first (to "
                         f"{candidates[0]}) or give its Hub id with {flag} USER/NAME")


def check_base_model(parent: str | None, repo_id: str, base_model: str | None, token: str | None,
                     flag: str = "--base-model") -> str | None:
    """`base_model_id` checked before a long job whose result will be pushed (training, distillation)."""
    from huggingface_hub import HfApi

    return base_model_id(parent, repo_id, base_model, HfApi(token=resolve_token(token)), flag)


def push_model(folder: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False,
               revision: str | None = None, base_model: str | None = None,
               commit_message: str = "Upload fashion-ddpm pipeline") -> str:
    """Uploads a saved pipeline folder to a Hub model repo; returns the repo's URL.

    Everything is checked before the first byte goes up (the folder is a model, the id, the token, the parent's Hub
    id). The card is rendered for `repo_id` in a staged copy (the folder is not changed); what is not part of a model
    (`NOT_UPLOADED`) stays home; files the repo holds that the folder no longer has are deleted in the same commit.

    Args:
        folder: a saved fashion-ddpm pipeline.
        repo_id: user/name; created when missing (`private` then applies).
        token: --token; None = $HF_TOKEN, else the saved login.
        revision: a branch to push to (created from main when missing); None = main.
        base_model: the parent's Hub id for a fine-tune or a student (default: found as `base_model_id` says).

    Raises:
        ModelError: `folder` is not a saved pipeline.
        HubAccessError: a bad id or revision, no token, a refused token, a missing parent, or the upload failed.
    """
    from huggingface_hub import HfApi

    from .models import check_model_folder

    folder = Path(folder)
    check_model_folder(folder)
    check_repo_id(repo_id)
    token = resolve_token(token)
    api = HfApi(token=token)
    with reported(repo_id):
        user = api.whoami()["name"]
        base = base_model_id(parent_model(folder), repo_id, base_model, api)
    logger.info("pushing %s to %s as %s", folder, repo_id, user)
    with tempfile.TemporaryDirectory(prefix=".push-") as tmp:
        staged = Path(tmp) / folder.name
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(*NOT_UPLOADED))
        render_card_for_hub(staged, repo_id, base, revision)
        with reported(repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            api.upload_folder(folder_path=staged, repo_id=repo_id, revision=revision, commit_message=commit_message,
                              delete_patterns="*")
    return hub_url(repo_id, revision=revision)


def render_card_for_hub(folder: Path, repo_id: str, base_model: str | None, revision: str | None = None) -> Path:
    """The folder's README.md made for `repo_id`: the usage lines load that id, the Hub's metadata names the parent
    (`base_model`, `base_model_relation: finetune`), and each measured metric links its source, the card itself."""
    from huggingface_hub import ModelCard

    from .training.model_card import card_data, set_use_section

    path = folder / "README.md"
    if path.is_file():
        card = ModelCard.load(path)
    else:  # a folder saved without a card (save_pretrained alone): the Hub metadata and the usage lines at least
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
        card = ModelCard(f"---\n{card_data(scheduler.get('prediction_type', 'epsilon')).to_yaml()}\n---\n\n"
                         f"# {folder.name}: a fashion-ddpm pipeline\n")
    card.text = set_use_section(card.text, folder, hub_id=repo_id)
    if base_model:
        card.data.base_model = base_model
        card.data.base_model_relation = "finetune"
    for result in card.data.eval_results or []:
        result.source_name = "fashion-ddpm evaluate (this card's Metrics section)"
        result.source_url = f"{hub_url(repo_id, revision=revision)}#metrics"
    atomic_write_text(path, str(card))
    return path
