"""`export`: a run (or adapter folder) to a merged transformers folder (float, or 4-/8-bit through
bitsandbytes) or GGUF files, each reloaded and checked against the trained model, with a manifest
beside it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from graft.errors import ConfigError
from graft.export import manifest as manifests
from graft.export.merge import merge, save_model, trained_model
from graft.progress import NullProgress, Progress

FORMATS = ("merged", "gguf")


def default_out(target: Path) -> Path:
    from graft.train.run_folder import RunFolder

    return RunFolder(target).export_dir


def export(target: str | Path, fmt: str = "merged", out: str | Path | None = None, quants: list[str] | None = None,
           dtype: str = "float32", prompts: list[str] | None = None, verify: bool = True,
           progress: Progress | None = None) -> list[dict]:
    """Export and verify; returns one manifest per file set written (merged: one; gguf: one per quant)."""
    from graft.export import verify as check

    progress = progress or NullProgress()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; expected one of {', '.join(FORMATS)}")
    target = Path(target)
    quants = _check_quants(quants or ["f16"]) if fmt == "gguf" else _check_bnb_quants(quants or [])
    out = Path(out) if out else default_out(target)

    loaded, notes = trained_model(target, progress)
    if fmt == "gguf":
        loaded.generative()
    source = _source(target, loaded)
    causal = loaded.task == "causal-lm"
    if quants and not causal:
        raise ConfigError(f"--quant {quants[0]}: a 4-bit or 8-bit merged export is made for causal LMs; "
                          f"this run is a {loaded.task} model", hint="export its float weights (--dtype float16)")
    texts = prompts or check.DEFAULT_PROMPTS
    seqs = check.reference_sequences(loaded.model, loaded.tokenizer, texts) if verify and causal else []
    # computed before merging: merge_and_unload changes the model in place
    trained = _cached(check.hf_logits(loaded.model), seqs) if causal else _class_logits(loaded.model, loaded.tokenizer, texts)
    model, more = merge(loaded)
    notes += more
    if seqs:
        notes.append(_merge_note(check.agreement(trained, check.hf_logits(model), seqs)))

    if fmt == "merged" and not quants:
        return [_merged(model, loaded.tokenizer, out / "merged", dtype, source, notes, seqs, trained, verify, progress)]
    if fmt == "merged":
        return _merged_quantised(model, loaded.tokenizer, out, quants, source, notes, seqs, trained, verify, progress)
    with tempfile.TemporaryDirectory(prefix="graft-export-") as tmp:
        folder = Path(tmp) / "merged"
        save_model(model, loaded.tokenizer, folder, "float32", progress)
        reference = _cached(check.hf_logits(model), seqs)
        del model, loaded  # the merged weights are on disk now; each GGUF check loads its own copy
        results = [_gguf(folder, out / "gguf", q, source, notes, seqs, reference, verify, Path(tmp), progress) for q in quants]
    (out / "gguf" / "README.md").write_text(manifests.model_card(results))
    return results


def _merged(model, tokenizer, folder: Path, dtype: str, source: dict, notes: list[str], seqs, trained, verify: bool,
            progress: Progress) -> dict:
    from graft.export import verify as check

    files = save_model(model, tokenizer, folder, dtype, progress)
    checks = []
    if verify:
        progress.log("reloading the merged folder with transformers to check it")
        reloaded = _reload(folder, source["task"])
        found = (check.agreement(trained, check.hf_logits(reloaded), seqs) if seqs
                 else _class_agreement(trained, _class_logits(reloaded, tokenizer, list(trained.texts))))
        checks.append({"with": "transformers", "reference": "the trained model, adapter unmerged", **found})
    return _manifest(folder, dtype, source, files, checks, notes)


def _merged_quantised(model, tokenizer, out: Path, quants: list[str], source: dict, notes: list[str], seqs, trained,
                      verify: bool, progress: Progress) -> list[dict]:
    """One folder per bitsandbytes type, `merged-nf4/` say, each quantised from the float32 merge."""
    from graft.export import bnb
    from graft.export import verify as check

    results = []
    with tempfile.TemporaryDirectory(prefix="graft-export-") as tmp:
        merged = Path(tmp) / "merged"
        save_model(model, tokenizer, merged, "float32", progress)
        for quant in quants:
            folder = out / f"merged-{quant}"
            files = bnb.save_quantized(merged, folder, quant, progress)
            checks = []
            if verify and seqs:
                progress.log(f"reloading {folder.name} with transformers to check it")
                found = check.agreement(trained, check.hf_logits(bnb.reload(folder)), seqs)
                checks.append({"with": "transformers", "reference": "the trained model, adapter unmerged", **found})
            note = (f"weights stored {quant} by bitsandbytes: AutoModelForCausalLM.from_pretrained loads them "
                    "quantised and needs bitsandbytes installed")
            results.append(_manifest(folder, quant, source, files, checks, notes + [note]))
    return results


def _manifest(folder: Path, kind: str, source: dict, files: list[Path], checks: list[dict], notes: list[str]) -> dict:
    result = manifests.build("merged", kind, source, files, checks, notes, {"folder": folder.name})
    manifests.write(result, folder / "graft-export.json")
    (folder / "README.md").write_text(manifests.model_card([result]))
    return result


def _reload(folder: Path, task: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    return cls.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()


class _ClassLogits(dict):
    """text -> class logits of a classifier on the fixed prompts."""

    texts = property(lambda self: self.keys())


def _class_logits(model, tokenizer, texts: list[str]) -> _ClassLogits:
    import torch

    with torch.inference_mode():
        return _ClassLogits({t: model(**tokenizer(t, return_tensors="pt")).logits[0].float().numpy() for t in texts})


def _class_agreement(reference: _ClassLogits, candidate: _ClassLogits) -> dict:
    import numpy as np

    diffs = np.stack([np.abs(reference[t] - candidate[t]) for t in reference])
    same = [int(reference[t].argmax() == candidate[t].argmax()) for t in reference]
    return {"prompts": len(same), "positions": len(same), "top1_match": sum(same) / len(same),
            "max_abs_logit_diff": float(diffs.max()), "mean_abs_logit_diff": float(diffs.mean())}


def _gguf(merged: Path, out: Path, quant: str, source: dict, notes: list[str], seqs, reference, verify: bool, tmp: Path,
          progress: Progress) -> dict:
    from graft.export import llama_cpp
    from graft.export import verify as check
    from graft.export.gguf_writer import WRITER_QUANTS, write_gguf

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{Path(source['path']).name}-{quant}.gguf"
    progress.log(f"writing {path}")
    if quant in WRITER_QUANTS:
        info = write_gguf(merged, path, quant, progress)
    else:  # a llama.cpp quant type: write f16 with gguf, then let llama.cpp quantize it
        f16 = tmp / "f16.gguf"
        if not f16.exists():
            write_gguf(merged, f16, "f16", progress)
        llama_cpp.requantize(f16, path, quant)
        info = {"quant": quant, "quantized_by": "llama.cpp", "tensor_types": _tensor_types(path)}
    checks = []
    if verify and seqs:
        progress.log(f"checking {path.name}: transformers' GGUF loader" + (" and llama.cpp" if llama_cpp.available() else ""))
        # transformers dequantizes through gguf-py, which reads every llama.cpp type
        checks.append({"with": "transformers", **check.agreement(reference, check.gguf_logits_transformers(path), seqs)})
        if llama_cpp.available():
            checks.append({"with": "llama.cpp", **check.agreement(reference, check.gguf_logits_llama_cpp(path), seqs)})
    extra_notes = [] if llama_cpp.available() else ["llama-cpp-python not installed: checked with transformers' GGUF loader only"]
    result = manifests.build("gguf", quant, source, [path], checks, notes + extra_notes, {"gguf": info})
    manifests.write(result, path.with_suffix(".json"))
    return result


def _tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each ggml type a GGUF file holds (llama.cpp mixes types within one quant)."""
    from collections import Counter

    from gguf import GGUFReader

    return dict(Counter(t.tensor_type.name for t in GGUFReader(path).tensors))


def _check_quants(quants: list[str]) -> list[str]:
    from graft.export import llama_cpp
    from graft.export.gguf_writer import WRITER_QUANTS

    quants = [q.strip().lower() for q in quants if q.strip()]
    for q in quants:
        if q in WRITER_QUANTS:
            continue
        if q in llama_cpp.LLAMA_CPP_QUANTS:
            if not llama_cpp.available():
                raise ConfigError(f"--quant {q} is made by llama.cpp, and llama-cpp-python is not installed",
                                  hint=f'pip install "graft[llama]", or pick one of {", ".join(WRITER_QUANTS)}')
            continue
        raise ConfigError(f"unknown --quant '{q}'; graft writes {', '.join(WRITER_QUANTS)} itself, and "
                          f"{', '.join(llama_cpp.LLAMA_CPP_QUANTS)} through llama.cpp when llama-cpp-python is installed")
    return list(dict.fromkeys(quants))


def _check_bnb_quants(quants: list[str]) -> list[str]:
    from graft.export.bnb import BNB_QUANTS, check_available

    quants = list(dict.fromkeys(q.strip().lower() for q in quants if q.strip()))
    for q in quants:
        if q not in BNB_QUANTS:
            raise ConfigError(f"unknown --quant '{q}' for a merged export; expected one of {', '.join(BNB_QUANTS)} "
                              "(bitsandbytes), or none for float weights (--dtype)")
    if quants:
        check_available()
    return quants


def _source(target: Path, loaded) -> dict:
    from graft.models.catalog import CATALOG

    return {"path": str(target.resolve()), "base": loaded.base, "technique": loaded.technique, "task": loaded.task,
            "base_hub_id": CATALOG[loaded.base].hub_id if loaded.base in CATALOG else None}


def _cached(fn, seqs):
    """Logits computed now for the fixed sequences, served later from a table."""
    table = {tuple(s.ids): fn(s.ids) for s in seqs}
    return lambda ids: table[tuple(ids)]


def _merge_note(result: dict) -> str:
    return (f"merging changed top-1 next tokens at {1 - result['top1_match']:.1%} of {result['positions']} positions "
            f"(max logit diff {result['max_abs_logit_diff']:.2e}): float rounding only")
