"""Hugging Face Hub access: fail fast when offline, download only the files a model needs."""

from __future__ import annotations

from pathlib import Path

from graft import network
from graft.errors import ModelNotFoundError, OfflineError
from graft.network import offline_by_env

# Enough to load a model with transformers from safetensors; no pickled weights.
DEFAULT_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]


def looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def hub_reachable() -> bool:
    return not offline_by_env() and network.hub_reachable()


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
