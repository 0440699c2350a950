"""What an export wrote and how well it agrees with the trained model: a JSON manifest beside the
files, and a model card for the Hub."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

# top-1 agreement an export should reach; below it the CLI warns (q4 and lower: reported, not judged)
EXPECTED_TOP1 = {"float32": 0.99, "float16": 0.99, "bfloat16": 0.95, "f32": 0.99, "f16": 0.99, "bf16": 0.95, "q8_0": 0.95}


def file_entry(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def build(fmt: str, kind: str, source: dict, files: list[Path], checks: list[dict], notes: list[str],
          extra: dict | None = None) -> dict:
    """`kind` is the dtype (merged) or quant type (gguf); `checks` are verify.agreement results with a `with` key."""
    from graft import __version__

    expected = EXPECTED_TOP1.get(kind)
    for check in checks:
        check["expected_top1"] = expected
        check["passed"] = None if expected is None else check["top1_match"] >= expected
    return {
        "graft_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "format": fmt,
        "type": kind,
        "source": source,
        "files": [file_entry(p) for p in files],
        "verification": checks,
        "notes": notes,
        **(extra or {}),
    }


def write(manifest: dict, path: Path) -> Path:
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def model_card(manifests: list[dict]) -> str:
    """A README.md for the Hub: where the files came from and their measured agreement."""
    first = manifests[0]
    src = first["source"]
    gguf = first["format"] == "gguf"
    tags = ["graft", src.get("technique") or "base", "gguf" if gguf else "safetensors"]
    lines = ["---", f"base_model: {src.get('base_hub_id') or src['base']}",
             f"library_name: {'gguf' if gguf else 'transformers'}", "tags:", *[f"- {t}" for t in tags], "---", "",
             f"# {Path(src['path']).name}", "",
             f"Fine-tuned from `{src['base']}` with {src.get('technique') or 'no adapter'}, exported by graft "
             f"{first['graft_version']}.", "", "## Files and verification", "",
             "Each file was reloaded and its greedy next tokens compared with the merged model's on fixed prompts.", "",
             "| file | type | checked with | next tokens | top-1 agreement | max logit diff |", "|---|---|---|---|---|---|"]
    for m in manifests:
        for c in m["verification"]:
            lines.append(f"| {m['files'][0]['name']} | {m['type']} | {c['with']} | {c['positions']} | "
                         f"{c['top1_match']:.1%} | {c['max_abs_logit_diff']:.4f} |")
    notes = sorted({n for m in manifests for n in m["notes"]})
    lines += ["", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
