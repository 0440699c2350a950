"""The search space file: parsing, every mistake named by file and key before any training, the
baseline's values, and list-valued choices through a real Optuna trial."""

from __future__ import annotations

import pytest

from graft.errors import ConfigError
from graft.tune.space import Space

optuna = pytest.importorskip("optuna")  # the `tune` extra

SPACE = """\
train.lr: {type: float, low: 1e-5, high: 1e-3, log: true}   # PyYAML reads 1e-5 as a string
technique.r: {type: int, low: 4, high: 32, step: 4}
technique.alpha: [8, 16, 32]
technique.dropout: {low: 0.0, high: 0.2}
technique.target_modules: {choices: [all-linear, [q_proj, v_proj]]}
train.batch_size: {low: 2, high: 8}
"""


@pytest.fixture
def cfg(make_config, tmp_path):
    return make_config("some-model", tmp_path / "d.json", tmp_path / "runs",
                       **{"technique.alpha": 16, "technique.target_modules": ["q_proj", "v_proj"], "train.lr": 2e-4})


def load(tmp_path, text: str) -> Space:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return Space.load(path)


def test_parses_types_ranges_and_choices(tmp_path):
    space = load(tmp_path, SPACE)
    p = space.params
    assert list(p) == ["train.lr", "technique.r", "technique.alpha", "technique.dropout", "technique.target_modules",
                       "train.batch_size"]
    assert (p["train.lr"].type, p["train.lr"].low, p["train.lr"].high, p["train.lr"].log) == ("float", 1e-5, 1e-3, True)
    assert (p["technique.r"].type, p["technique.r"].step) == ("int", 4)
    assert p["technique.alpha"].type == "categorical" and p["technique.alpha"].choices == (8, 16, 32)
    assert p["technique.dropout"].type == "float"          # inferred: 0.0 is not an int
    assert p["train.batch_size"].type == "int"             # inferred: both bounds are ints
    tm = p["technique.target_modules"]
    assert tm.labels == ["all-linear", '["q_proj", "v_proj"]']  # Optuna takes scalars only
    assert tm.decode('["q_proj", "v_proj"]') == ["q_proj", "v_proj"]


@pytest.mark.parametrize("text, says", [
    ("train.lr: {type: normal, low: 0.1, high: 1}", "train.lr: unknown type 'normal'"),
    ("train.lr: {type: float, low: 0.1, high: 0.1}", "train.lr: low (0.1) must be below high (0.1)"),
    ("train.lr: {type: float, low: 0.5, high: 0.1}", "train.lr: low (0.5) must be below high"),
    ("train.lr: {type: float, low: 0.0, high: 0.1, log: true}", "train.lr: a log scale needs low > 0"),
    ("technique.alpha: []", "technique.alpha: choices must be a non-empty list"),
    ("technique.alpha: {choices: []}", "technique.alpha: choices must be a non-empty list"),
    ("technique.alpha: [8, 8]", "technique.alpha: choices repeat a value"),
    ("technique.r: {type: int, low: 4, high: 30, step: 4}", "technique.r: high - low (26) is not a multiple of step (4)"),
    ("technique.r: {type: int, low: 4.5, high: 30}", "technique.r: low: 4.5 is not a whole number"),
    ("technique.r: {type: int, lwo: 4, high: 30}", "technique.r: unknown field(s) lwo"),
    ("technique.r: {low: 4, high: 32, choices: [1]}", "unknown field(s) high, low for type categorical"),
    ("train.lr: {low: fast, high: 1}", "train.lr: low: 'fast' is not a number"),
    ("train.lr: 0.001", "train.lr: expected a list of choices or a mapping"),
    ("data.limit: [10, 20]", "data.limit: cannot be searched"),
    ("data: [1]", "data: cannot be searched"),
    ("model.name: [a, b]", "model.name: cannot be searched"),
    ("train.seed: [1, 2]", "train.seed: cannot be searched"),
    ("train.eval_every: [1, 2]", "train.eval_every: cannot be searched"),
    ("output_dir: [a, b]", "output_dir: cannot be searched"),
    ("run_name: [a, b]", "run_name: cannot be searched"),
    ("lr: [0.1, 0.2]", "lr: expected a dotted config key"),
    ("[1, 2]", "expected a mapping of dotted config keys"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, text, says):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert str(e.value).startswith(str(tmp_path / "space.yaml") + ": ")
    assert says in str(e.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such space file"):
        Space.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path, "train.lr: [1, 2")


@pytest.mark.parametrize("text, says", [
    ("train.lrr: {low: 0.1, high: 1.0}", "train.lrr: train.lrr=0.1: train.lrr: unknown option"),
    ("trian.lr: {low: 0.1, high: 1.0}", "trian.lr: trian.lr=0.1: trian: unknown option"),
    ("technique.rank: [4, 8]", "technique.rank: technique.rank=4: technique: lora: rank: unknown option"),
    ("technique.dropout: {low: 0.5, high: 1.5}", "technique.dropout: technique.dropout=1.5: technique"),
    ("train.scheduler: [cosine, wavy]", "train.scheduler: train.scheduler=wavy: train.scheduler"),
])
def test_keys_and_values_the_config_refuses_fail_before_training(tmp_path, cfg, text, says):
    space = load(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        space.check(cfg)
    assert str(e.value).startswith(f"{tmp_path / 'space.yaml'}: ")
    assert says in str(e.value)


def test_check_accepts_a_good_space(tmp_path, cfg):
    load(tmp_path, SPACE).check(cfg)  # raises on any bad key or value


def test_baseline_is_the_config_itself_in_optuna_terms(tmp_path, cfg):
    space = load(tmp_path, SPACE)
    base = space.baseline(cfg)
    assert base == {"train.lr": 2e-4, "technique.r": 8, "technique.alpha": 16, "technique.dropout": 0.0,
                    "technique.target_modules": '["q_proj", "v_proj"]', "train.batch_size": 8}
    # and the config those values rebuild is the config
    decoded = {k: space.params[k].decode(v) for k, v in base.items()}
    assert space.apply(cfg, decoded, "t").model_dump() == cfg.model_dump()


@pytest.mark.parametrize("text, says", [
    ("technique.alpha: [8, 32]", "technique.alpha: the run config's own value 16 is not one of the choices [8, 32]"),
    ("train.lr: {low: 1.0e-3, high: 1.0e-2}", "train.lr: the run config's own value 0.0002 is outside [0.001, 0.01]"),
    ("technique.r: {low: 4, high: 28, step: 6}", "the run config's own value 8 is not on the grid"),
])
def test_baseline_outside_the_space_is_an_error_with_a_way_out(tmp_path, cfg, text, says):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text).baseline(cfg)
    assert says in str(e.value) and "--no-baseline" in e.value.hint


def test_optuna_samples_list_choices_and_ranges(tmp_path, cfg):
    space = load(tmp_path, SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(12):
        trial = study.ask()
        values = space.suggest(trial)
        space.apply(cfg, values, "trial")  # every sample is a valid config
        assert 1e-5 <= values["train.lr"] <= 1e-3 and values["technique.r"] % 4 == 0
        assert values["technique.alpha"] in (8, 16, 32) and 2 <= values["train.batch_size"] <= 8
        seen.append(values["technique.target_modules"])
        study.tell(trial, 1.0)
    assert "all-linear" in seen and ["q_proj", "v_proj"] in seen
    assert all(isinstance(t.params["technique.target_modules"], str) for t in study.trials)
