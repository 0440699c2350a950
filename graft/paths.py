"""Where graft keeps its cache (converted models, downloads). Override with GRAFT_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def graft_home() -> Path:
    root = os.environ.get("GRAFT_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graft"
    )
    return Path(root)


def models_cache() -> Path:
    return graft_home() / "models"


def safe_name(name: str) -> str:
    """A user-supplied name turned into one path component that cannot escape its folder."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "--" for c in name).strip(".")
    if not cleaned or cleaned in {".", ".."}:
        raise ValueError(f"not a usable name: {name!r}")
    return cleaned
