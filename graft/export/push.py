"""Upload an export folder to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from graft.errors import ConfigError, OfflineError
from graft.models.hub import hub_reachable, looks_like_hub_id


def push(folder: Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (or reuse) the model repo and upload the folder; returns the repo URL."""
    if not looks_like_hub_id(repo_id):
        raise ConfigError(f"--push expects ORG/NAME, got '{repo_id}'")
    if not hub_reachable():
        raise OfflineError(f"cannot push to '{repo_id}': the Hugging Face Hub is not reachable (offline or HF_HUB_OFFLINE=1)",
                           hint=f"the export is kept in {folder}; push it later with --push, or upload the folder by hand")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="graft export", ignore_patterns=[".*"])
    except HfHubHTTPError as e:
        raise ConfigError(f"the Hub refused the upload to '{repo_id}': {e}",
                          hint="log in with `hf auth login` or set HF_TOKEN with write access") from None
    return str(url)
