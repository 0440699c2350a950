"""Write a llama-architecture Hugging Face folder as one GGUF file with the `gguf` package's writer.

Tensors stream from the safetensors files one at a time (convert, quantize, write), so memory stays
near one tensor however large the model is. The tokenizer (byte-level BPE) and its chat template are
embedded under llama.cpp's key names, so llama.cpp and transformers' GGUF loader both rebuild it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as GGML

from graft.errors import ConfigError
from graft.progress import NullProgress, Progress

# What gguf.quants.quantize produces itself (its K-quant classes only dequantize).
WRITER_QUANTS: dict[str, GGML] = {
    "f32": GGML.F32, "f16": GGML.F16, "bf16": GGML.BF16, "q8_0": GGML.Q8_0,
    "q4_0": GGML.Q4_0, "q4_1": GGML.Q4_1, "q5_0": GGML.Q5_0, "q5_1": GGML.Q5_1,
}
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
_FILE_TYPES = {q: gguf.LlamaFileType.ALL_F32 if q == "f32" else gguf.LlamaFileType[f"MOSTLY_{q.upper()}"]
               for q in WRITER_QUANTS}
_MODEL_ARCH = gguf.MODEL_ARCH.LLAMA
_ARCH = gguf.MODEL_ARCH_NAMES[_MODEL_ARCH]  # "llama"


@dataclass
class _Tensor:
    hf_name: str
    name: str  # the GGUF name
    file: Path
    shape: tuple[int, ...]
    qtype: GGML
    heads: int | None = None  # set for q/k projections: rows are permuted per head

    @property
    def nbytes(self) -> int:
        block, size = gguf.GGML_QUANT_SIZES[self.qtype]
        return math.prod(self.shape[:-1]) * (self.shape[-1] // block) * size


def write_gguf(model_dir: Path, out_path: Path, quant: str = "f16", progress: Progress | None = None) -> dict:
    """Write model_dir (config.json, *.safetensors, tokenizer) to out_path as GGUF; returns what was written."""
    from transformers import AutoConfig, AutoTokenizer

    model_dir, out_path, quant = Path(model_dir), Path(out_path), quant.lower()
    progress = progress or NullProgress()
    if quant not in WRITER_QUANTS:
        raise ConfigError(
            f"GGUF quantisation '{quant}' cannot be written by the gguf writer; it writes: {', '.join(WRITER_QUANTS)}",
            hint="K-quants (q4_k_m, q6_k, ...) come from llama.cpp: requantize an f16 export "
            "(graft.export.llama_cpp.requantize, needs llama-cpp-python)",
        )
    config = AutoConfig.from_pretrained(model_dir)
    _check_llama(config)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tensors, fallbacks = _plan(model_dir, config, quant)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")  # never leave a half file under the real name
    writer = gguf.GGUFWriter(partial, _ARCH)
    progress.start("gguf", total=len(tensors))
    try:
        arch = _add_model_metadata(writer, config, model_dir, quant, tensors)
        vocab = _add_tokenizer(writer, tokenizer, model_dir, config.vocab_size)
        for t in tensors:
            dtype = {GGML.F32: np.float32, GGML.F16: np.float16}.get(t.qtype, np.uint8)
            shape = t.shape if dtype is not np.uint8 else gguf.quant_shape_to_byte_shape(t.shape, t.qtype)
            writer.add_tensor_info(t.name, shape, np.dtype(dtype), t.nbytes, raw_dtype=t.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tensors:
            writer.write_tensor_data(_convert(t))
            progress.advance("gguf")
        writer.close()
        partial.replace(out_path)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
        progress.finish("gguf")

    types = dict(Counter(t.qtype.name for t in tensors))
    return {
        "path": str(out_path), "quant": quant, "file_type": _FILE_TYPES[quant].name, "tensors": len(tensors),
        "tensor_types": types, "fallbacks": fallbacks, "bytes": out_path.stat().st_size,
        "architecture": arch, "tokenizer": vocab,
    }


def _check_llama(config) -> None:
    archs = getattr(config, "architectures", None) or ["LlamaForCausalLM" if config.model_type == "llama" else config.model_type]
    if archs[0] not in SUPPORTED_ARCHITECTURES:
        raise ConfigError(
            f"GGUF export supports the llama architecture only ({', '.join(SUPPORTED_ARCHITECTURES)}); "
            f"this model is {archs[0]}",
            hint="export it with --format merged (safetensors) instead",
        )
    kind = _rope(config).get("rope_type") or _rope(config).get("type") or "default"
    if kind != "default":
        raise ConfigError(f"GGUF export does not support rope scaling '{kind}' yet (only plain RoPE)")


def _rope(config) -> dict:
    """RoPE settings: transformers 5 keeps them in rope_parameters, older configs in rope_theta/rope_scaling."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    return params


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _plan(model_dir: Path, config, quant: str) -> tuple[list[_Tensor], dict[str, str]]:
    """Every tensor to write, with its GGUF name and type, in file order."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{model_dir} has no *.safetensors weights to export")
    names = gguf.get_tensor_name_map(_MODEL_ARCH, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    tensors, fallbacks = [], {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for hf_name in f.keys():
                if (tied and hf_name == "lm_head.weight") or hf_name.endswith("rotary_emb.inv_freq"):
                    continue  # llama.cpp reuses token_embd as the output layer when tied; RoPE it computes
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ConfigError(f"tensor {hf_name} in {file.name} has no GGUF llama counterpart")
                shape = tuple(f.get_slice(hf_name).get_shape())
                qtype, fallback = _tensor_type(name, shape, quant, tied)
                if fallback:
                    fallbacks[name] = fallback
                heads = None
                if ".attn_q." in name:
                    heads = config.num_attention_heads
                elif ".attn_k." in name:
                    heads = config.num_key_value_heads
                tensors.append(_Tensor(hf_name, name, file, shape, qtype, heads))
    return tensors, fallbacks


def _tensor_type(name: str, shape: tuple[int, ...], quant: str, tied: bool) -> tuple[GGML, str | None]:
    """The type for one tensor, and why it differs from the requested one (None when it does not)."""
    wanted = WRITER_QUANTS[quant]
    if len(shape) == 1:
        return GGML.F32, None  # norms and biases: tiny, and llama.cpp computes them in F32
    if wanted in (GGML.F32, GGML.F16, GGML.BF16):
        return wanted, None
    output = name == "output.weight" or (tied and name == "token_embd.weight")
    if output and wanted != GGML.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[GGML.Q8_0][0] == 0:
        # The output projection is the most sensitive matrix; llama.cpp's own mixes keep it at >= 6 bits.
        return GGML.Q8_0, "Q8_0 (output layer kept at 8 bits)"
    block = gguf.GGML_QUANT_SIZES[wanted][0]
    if shape[-1] % block:
        return GGML.F16, f"F16 (row length {shape[-1]} is not a multiple of the {wanted.name} block of {block})"
    return wanted, None


def _convert(t: _Tensor) -> np.ndarray:
    import torch
    from safetensors import safe_open

    with safe_open(t.file, framework="pt") as f:
        data = f.get_tensor(t.hf_name).to(torch.float32).numpy()
    if t.heads:
        data = _interleave_rope(data, t.heads)
    return gguf.quants.quantize(data, t.qtype)


def _interleave_rope(w: np.ndarray, heads: int) -> np.ndarray:
    """HF stores each q/k head as [first halves | second halves] (rotate-half RoPE); llama.cpp rotates
    adjacent pairs, so each head's rows are interleaved: r0, r(d/2), r1, r(d/2+1), ..."""
    half = w.shape[0] // heads // 2
    return w.reshape(heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_model_metadata(writer, config, model_dir: Path, quant: str, tensors: list[_Tensor]) -> dict:
    params = sum(math.prod(t.shape) for t in tensors)
    meta = gguf.Metadata.load(None, model_dir, None, params)  # name, size label, ... from folder and model card
    meta.set_gguf_meta_model(writer)
    writer.add_type(gguf.GGUFType.MODEL)
    head_dim = _head_dim(config)
    arch = {
        "architecture": _ARCH,
        "context_length": config.max_position_embeddings,
        "embedding_length": config.hidden_size,
        "block_count": config.num_hidden_layers,
        "feed_forward_length": config.intermediate_size,
        "head_count": config.num_attention_heads,
        "head_count_kv": config.num_key_value_heads,
        "rope_dimension_count": head_dim,
        "rope_freq_base": float(_rope(config)["rope_theta"]),
        "rms_norm_eps": float(config.rms_norm_eps),
        "vocab_size": config.vocab_size,
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
    }
    writer.add_context_length(arch["context_length"])
    writer.add_embedding_length(arch["embedding_length"])
    writer.add_block_count(arch["block_count"])
    writer.add_feed_forward_length(arch["feed_forward_length"])
    writer.add_head_count(arch["head_count"])
    writer.add_head_count_kv(arch["head_count_kv"])
    writer.add_rope_freq_base(arch["rope_freq_base"])
    writer.add_layer_norm_rms_eps(arch["rms_norm_eps"])
    writer.add_file_type(_FILE_TYPES[quant])
    writer.add_vocab_size(arch["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim)  # llama.cpp assumes hidden/heads unless told
        writer.add_value_length(head_dim)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    return arch


def _add_tokenizer(writer, tokenizer, model_dir: Path, n_vocab: int) -> dict:
    """Byte-level BPE as llama.cpp's "gpt2" tokenizer model: tokens, types, merges, special ids, template."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str()) if hasattr(tokenizer, "backend_tokenizer") else {}
    model, decoder = spec.get("model", {}), spec.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != "ByteLevel":
        raise ConfigError(
            f"GGUF export supports byte-level BPE tokenizers (GPT-2 style) only; {model_dir.name} has a "
            f"{model.get('type', type(tokenizer).__name__)} tokenizer with a {decoder.get('type')} decoder"
        )
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= n_vocab:
        raise ConfigError(f"the tokenizer has ids up to {max(vocab.values())} but the model only {n_vocab} embeddings")
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]  # ids the tokenizer never produces (padded embeddings)
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in vocab.items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for i, added in tokenizer.added_tokens_decoder.items():
        types[i] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
    pre = _pre_tokenizer(spec.get("pre_tokenizer"))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_add_space_prefix(bool(_byte_level(spec.get("pre_tokenizer")).get("add_prefix_space", False)))

    # Merges in either tokenizer.json spelling come from gguf's reader; ids, flags and template from the
    # tokenizer transformers loads, which is what the model was trained with.
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    special.special_token_ids = {
        kind: tid for kind in ("bos", "eos", "unk", "pad")
        if (tid := getattr(tokenizer, f"{kind}_token_id", None)) is not None
    }
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    special.add_special_token = {"bos": full[:1] != plain[:1], "eos": full[-1:] != plain[-1:]}
    special.chat_template = tokenizer.chat_template or None
    special.add_to_gguf(writer, quiet=True)
    return {
        "model": "gpt2", "pre": pre, "tokens": n_vocab, "merges": len(special.merges),
        "special_ids": special.special_token_ids, "add_bos": special.add_special_token["bos"],
        "chat_template": special.chat_template is not None,
    }


def _byte_level(pre: dict | None) -> dict:
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    return next((s for s in steps if s.get("type") == "ByteLevel"), {})


def _pre_tokenizer(pre: dict | None) -> str:
    """llama.cpp's name for how text is split before BPE, recognised from tokenizer.json's pre_tokenizer.

    llama.cpp hard-codes one split regex per name, so an unrecognised split gets "default" (its generic
    BPE split): the weights and ids stay right, only llama.cpp's own text tokenization may differ.
    """
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # GPT-2's split after cutting digits apart
    split = steps[0].get("pattern", {}).get("Regex", "") if kinds == ["Split", "ByteLevel"] else ""
    if split.startswith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"):
        return "llama-bpe"  # Llama 3's split
    return "default"
