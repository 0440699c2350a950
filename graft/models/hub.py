"""Hugging Face Hub access: fail fast when offline, download only the files a model needs."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from graft.errors import ModelNotFoundError, OfflineError

# Enough to load a model with transformers from safetensors; no pickled weights.
DEFAULT_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]


def looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hub answers a TCP connect within `timeout`; honours HF_HUB_OFFLINE and HF_ENDPOINT."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The local snapshot of a Hub model if it was downloaded before, without touching the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:
        return None


def download(repo_id: str, patterns: list[str] | None = None, revision: str | None = None) -> Path:
    """Download a model (only files matching `patterns`) into the Hugging Face cache; returns its folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if not hub_reachable():
        raise OfflineError(
            f"cannot download '{repo_id}': the Hugging Face Hub is not reachable (offline or HF_HUB_OFFLINE=1)",
            hint="use a bundled model (graft models list), a local folder, or a .gguf file",
        )
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns or DEFAULT_PATTERNS))
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ModelNotFoundError(f"'{repo_id}' not found on the Hub: {e}") from None
