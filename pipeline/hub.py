"""Hugging Face Hub checks that every upload shares: an upload that cannot succeed fails before any work starts.

Light on purpose (huggingface_hub is imported inside the function): training and `fashion-ddpm synthesize` call
`check_hub_access` before they load data or generate a single image.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("fashion_ddpm.hub")


class HubAccessError(ValueError):
    """An upload to the Hub that cannot succeed (no id, a malformed id, no token, no network); one line says which."""


def check_hub_access(repo_id: str | None, token: str | None = None, flag: str = "--push_to_hub",
                     id_flag: str = "--hub_model_id") -> str:
    """Fails now when pushing to `repo_id` cannot work; returns the logged-in user's name.

    Args:
        repo_id: user/name on the Hub.
        token: a Hub token; None = the logged-in token or $HF_TOKEN.
        flag / id_flag: how the calling command names the push option and the id option (for the message).

    Raises:
        HubAccessError: no or malformed id, no token, offline (HF_HUB_OFFLINE) or no network.
    """
    if not repo_id:
        raise HubAccessError(f"{flag} needs {id_flag} user/name")
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubAccessError(f"{flag} {repo_id!r} is not a Hub id; give user/name") from None
    try:
        user = HfApi(token=token).whoami()
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise HubAccessError(f"{flag}: cannot reach the Hugging Face Hub as a logged-in user ({type(e).__name__}: {text}). "
                             f"Run `hf auth login` or set HF_TOKEN, check the network, or drop {flag}.") from None
    logger.info("will push to %s as %s", repo_id, user.get("name"))
    return user.get("name") or ""
