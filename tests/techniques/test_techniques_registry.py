"""The registry: built-ins arrive through entry points like any plugin; broken or clashing plugins
are reported, not fatal; unmet requirements stop a run before any work; options are validated."""

from __future__ import annotations

import dataclasses
from importlib.metadata import EntryPoint

import pytest

import graft.techniques.registry as registry
from graft.config import RunConfig
from graft.errors import ConfigError, TechniqueUnavailableError
from graft.techniques import Requirement, available, broken, get_technique
from graft.techniques.technique import FAMILIES

BUILTINS = {"full", "lora", "dora", "qlora", "qdora", "adalora", "ia3", "loha", "lokr", "vera",
            "prompt-tuning", "prefix-tuning", "p-tuning", "bottleneck"}


@pytest.fixture
def fresh_registry():
    registry.reload()
    yield
    registry.reload()


def test_every_builtin_comes_from_graft_entry_points(fresh_registry):
    found = available()
    assert BUILTINS <= set(found) and not (BUILTINS & set(broken()))
    for name in BUILTINS:
        t = found[name]
        assert t.source == "graft" and t.family in FAMILIES and t.kinds and t.description
        assert t.parse({}) is not None  # every option has a default
        assert t.missing() == []  # bitsandbytes is a test dependency; nothing else needs more
    # every family but "selective" (the example plugin's) has a built-in
    assert {t.family for n, t in found.items() if n in BUILTINS} == set(FAMILIES) - {"selective"}


def _fake_entry_points(*extra: EntryPoint):
    from importlib.metadata import entry_points as real

    def fake(group):
        return list(real(group=group)) + list(extra)

    return fake


def test_a_broken_or_clashing_plugin_is_listed_and_the_rest_still_work(fresh_registry, monkeypatch):
    monkeypatch.setattr(registry, "entry_points", _fake_entry_points(
        EntryPoint("nope", "graft_no_such_module:technique", registry.GROUP),
        EntryPoint("lora-again", "graft.techniques.lora:technique", registry.GROUP),  # name 'lora' again
        EntryPoint("not-a-technique", "graft.techniques.technique:FAMILIES", registry.GROUP),
    ))
    found, bad = available(), broken()
    assert "lora" in found and found["lora"].source == "graft"
    assert "ModuleNotFoundError" in bad["nope"] and "already taken" in bad["lora-again"]
    assert "is a tuple, not a graft Technique" in bad["not-a-technique"]
    with pytest.raises(TechniqueUnavailableError, match="could not be loaded"):
        get_technique("nope")


def test_register_checks_the_family(fresh_registry):
    lora = get_technique("lora")
    with pytest.raises(ValueError, match="family 'magic'"):
        registry.register(dataclasses.replace(lora, name="magic", family="magic"))
    registry.register(dataclasses.replace(lora, name="lora-copy"))
    assert get_technique("lora-copy").apply is lora.apply


def test_unknown_technique_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown technique 'lorra'.*lora"):
        RunConfig.from_dict({"data": {"path": "d.json"}, "technique": {"name": "lorra"}})
    with pytest.raises(ConfigError, match=r"technique: lora: r: Input should be greater than or equal to 1"):
        RunConfig.from_dict({"data": {"path": "d.json"}, "technique": {"name": "lora", "r": 0}})
    with pytest.raises(ConfigError, match="ia3: r: unknown option"):
        RunConfig.from_dict({"data": {"path": "d.json"}, "technique": {"name": "ia3", "r": 8}})
    cfg = RunConfig.from_dict({"data": {"path": "d.json"}, "technique": {"name": "dora", "r": 4}})
    # the saved config spells out every option, defaults included
    assert cfg.model_dump()["technique"] == {"name": "dora", **get_technique("dora").parse({"r": 4}).model_dump()}


def test_an_unavailable_technique_stops_before_any_work(fresh_registry, tmp_path, make_config, tiny_chat_data):
    lora = get_technique("lora")
    registry.register(dataclasses.replace(
        lora, name="needs-gpu", requires=(Requirement("a CUDA GPU", lambda: False), Requirement("bitsandbytes>=99", lambda: False))))
    from graft.train.recipe import train

    # the model path does not even exist: the requirement check comes before any loading
    cfg = make_config(tmp_path / "no-such-model", tiny_chat_data, tmp_path / "runs", **{"technique": {"name": "needs-gpu"}})
    with pytest.raises(TechniqueUnavailableError, match="'needs-gpu' needs a CUDA GPU and bitsandbytes>=99"):
        train(cfg)
    assert not (tmp_path / "runs").exists()
