"""RunConfig: validation that names the field, YAML loading, dotted overrides."""

from __future__ import annotations

import pytest

from graft.config import RunConfig, apply_overrides, parse_set_option
from graft.errors import ConfigError

MINIMAL = {"data": {"path": "d.json"}}


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(raw)
    return str(info.value)


def test_defaults():
    cfg = RunConfig.from_dict(MINIMAL)
    assert cfg.model.name == "smollm2-135m-instruct"
    assert (cfg.technique.name, cfg.technique.options.r) == ("lora", 8)
    assert (cfg.train.lr, cfg.train.scheduler, cfg.checkpoint.keep_last) == (2e-4, "cosine", 2)


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"data": {"path": "d.json"}, "trian": {}}, "trian"),
        ({"data": {"path": "d.json"}, "train": {"lrr": 1e-3}}, "train.lrr"),
        ({"data": {"path": "d.json", "maxlen": 5}}, "data.maxlen"),
        ({"data": {"path": "d.json"}, "technique": {"rank": 4}}, "lora: rank"),
    ],
)
def test_unknown_keys_are_named(raw, field):
    msg = _error(raw)
    assert field in msg and "unknown option" in msg


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"data": {"path": "d.json"}, "train": {"lr": -1}}, "train.lr"),
        ({"data": {"path": "d.json"}, "train": {"batch_size": 0}}, "train.batch_size"),
        ({"data": {"path": "d.json"}, "train": {"scheduler": "cosin"}}, "train.scheduler"),
        ({"data": {"path": "d.json", "max_length": 4}}, "data.max_length"),
        ({"data": {"path": "d.json", "eval_fraction": 1.0}}, "data.eval_fraction"),
        ({"data": {"path": "d.json", "format": "csvish"}}, "data.format"),
        ({"data": {"path": "d.json"}, "model": {"dtype": "int8"}}, "model.dtype"),
        ({"data": {"path": "d.json"}, "checkpoint": {"keep_last": 0}}, "checkpoint.keep_last"),
        ({"data": {"path": "d.json"}, "train": {"epochs": "many"}}, "train.epochs"),
        ({}, "data"),
    ],
)
def test_bad_values_are_named(raw, field):
    msg = _error(raw)
    assert msg.startswith("config: ") and f"{field}:" in msg, msg


def test_every_problem_is_reported_at_once():
    msg = _error({"data": {"path": "d.json"}, "train": {"lr": 0, "batch_size": -2}})
    assert "train.lr" in msg and "train.batch_size" in msg


def test_yaml_load_with_overrides(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("data:\n  path: d.json\n  max_length: 128\ntrain:\n  lr: 1.0e-3\n  batch_size: 2\n")
    cfg = RunConfig.load(p, {"train.lr": 5e-4, "train.max_grad_norm": None, "checkpoint.every": 10, "model.name": "x/y"})
    assert cfg.train.lr == 5e-4
    assert cfg.train.batch_size == 2
    assert cfg.train.max_grad_norm is None  # an explicit null unsets an option
    assert (cfg.checkpoint.every, cfg.model.name, cfg.data.max_length) == (10, "x/y", 128)
    # round trip through the run folder's config.yaml
    out = tmp_path / "saved.yaml"
    cfg.save(out)
    assert RunConfig.load(out) == cfg


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        RunConfig.load(listy)
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  path: d.json\ntrain:\n  learning_rate: 1\n")
    with pytest.raises(ConfigError) as info:
        RunConfig.load(typo)
    assert str(typo) in str(info.value) and "train.learning_rate" in str(info.value)


def test_apply_overrides_does_not_mutate_and_checks_sections():
    raw = {"data": {"path": "d.json"}, "train": {"lr": 1}}
    out = apply_overrides(raw, {"train.lr": 2, "technique.r": 4})
    assert raw == {"data": {"path": "d.json"}, "train": {"lr": 1}}
    assert out["train"]["lr"] == 2 and out["technique"] == {"r": 4}
    with pytest.raises(ConfigError, match="'lr' is not a section"):
        apply_overrides(raw, {"train.lr.x": 1})


@pytest.mark.parametrize(
    "item, expected",
    [
        ("train.lr=0.001", ("train.lr", 0.001)),
        ("train.batch_size=16", ("train.batch_size", 16)),
        ("data.packing=true", ("data.packing", True)),
        ("data.path=my data.json", ("data.path", "my data.json")),
        ("technique.target_modules=[q_proj, v_proj]", ("technique.target_modules", ["q_proj", "v_proj"])),
        (" model.name = org/model ", ("model.name", "org/model")),
        ("run_name=a=b", ("run_name", "a=b")),
        ("data.path=[oops", ("data.path", "[oops")),  # not YAML: kept as the raw string
    ],
)
def test_parse_set_option(item, expected):
    assert parse_set_option(item) == expected


def test_parse_set_option_needs_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_option("train.lr")


def test_set_option_in_exponent_form_reaches_the_config():
    # YAML 1.1 reads "1e-4" as a string; the config must still end up with the float
    key, value = parse_set_option("train.lr=1e-4")
    cfg = RunConfig.from_dict(apply_overrides(MINIMAL, {key: value}))
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
