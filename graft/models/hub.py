"""Hugging Face Hub access: fail fast when offline, download only the files a model needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graft import network
from graft.errors import ModelNotFoundError, OfflineError
from graft.network import offline_by_env
from graft.progress import Progress

MIB = 2**20
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


def download(repo_id: str, patterns: list[str] | None = None, revision: str | None = None,
             progress: Progress | None = None) -> Path:
    """Download a model (only files matching `patterns`) into the Hugging Face cache; returns its folder.
    With `progress`, the bytes fetched are reported to it as a `download` task in MiB (huggingface_hub
    draws its own bars otherwise)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    require_hub(repo_id)
    bars = None if progress is None else reporting_bars(progress)
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns or DEFAULT_PATTERNS, tqdm_class=bars)
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ModelNotFoundError(f"'{repo_id}' not found on the Hub: {e}") from None
    if bars is not None:
        bars.done()
    return Path(folder)


def require_hub(repo_id: str) -> None:
    """An OfflineError at once when the Hub cannot be reached, rather than after its retries."""
    if not hub_reachable():
        raise OfflineError(
            f"cannot download '{repo_id}': the Hugging Face Hub is not reachable (offline or HF_HUB_OFFLINE=1)",
            hint="use a bundled model (graft models list), a local folder, or a .gguf file",
        )


def reporting_bars(progress: Progress) -> type:
    """A tqdm class for snapshot_download that hands its byte counter to `progress` (task `download`,
    in MiB: its total grows as each file starts) and draws nothing; its other bars are dropped.
    Call its `done()` when the download returned: huggingface_hub never closes that bar."""
    from tqdm.auto import tqdm

    class Bars(tqdm):
        counting: list["Bars"] = []

        def __init__(self, *args: Any, **kwargs: Any):
            # the bar snapshot_download counts network bytes on; it names it "Downloading bytes"
            self.counts = kwargs.get("unit") == "B" and str(kwargs.get("desc", "")).startswith("Downloading")
            if self.counts:
                Bars.counting.append(self)
            self.fetched, self.shown, self.shown_total = 0, 0, None
            super().__init__(*args, **{**kwargs, "disable": True})

        def update(self, n: float | None = 1) -> None:
            if not self.counts or not n:  # (not `self in counting`: tqdm bars compare equal by position)
                return
            self.fetched += int(n)
            total = -(-int(self.total or 0) // MIB)
            if total != self.shown_total:
                self.shown_total = total
                progress.start("download", total=total, completed=self.shown)
            self._show(self.fetched // MIB)

        def _show(self, done: int) -> None:
            if done > self.shown:
                progress.advance("download", done - self.shown)
                self.shown = done

        @classmethod
        def done(cls) -> None:
            for bar in cls.counting:
                if bar.shown_total is not None:
                    bar._show(-(-bar.fetched // MIB))  # the last partial MiB
                    progress.finish("download")

    return Bars
