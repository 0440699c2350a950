"""Is the Hugging Face Hub there? Answered in seconds, never by waiting on HTTP retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

CONNECT_TIMEOUT_S = 3.0


def offline_by_env(*variables: str) -> bool:
    """True when HF_HUB_OFFLINE (or any of `variables`, e.g. HF_DATASETS_OFFLINE) is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", *variables))


def hub_reachable(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """A plain TCP connect to HF_ENDPOINT (default huggingface.co) within `timeout` seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False
