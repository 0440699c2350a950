"""Benchmark matrix expansion: the cartesian product, technique options that do not apply, exclude,
extra cells, labels, stable cell ids and the errors a bad matrix gives. No training here."""

from __future__ import annotations

import pytest

from graft.bench.matrix import Matrix, cell_id
from graft.errors import ConfigError

BASE = {"data": {"path": "toy.json", "max_length": 64}, "train": {"max_steps": 2}}


def matrix(axes: dict, **spec) -> Matrix:
    return Matrix.from_dict({"name": "m", **BASE, "matrix": axes, **spec})


def params(cells) -> list[dict]:
    return [c.params for c in cells]


def test_cartesian_product_size_and_order() -> None:
    cells = matrix({"technique.name": ["lora", "dora"], "technique.r": [4, 8],
                    "train.optimizer": ["adamw", "sgd", "adafactor"]}).expand()
    assert len(cells) == 2 * 2 * 3
    assert [c.index for c in cells] == list(range(12))
    # itertools.product order: the last axis varies fastest
    assert [(c.params["technique.name"], c.params["technique.r"], c.params["train.optimizer"]) for c in cells[:4]] == [
        ("lora", 4, "adamw"), ("lora", 4, "sgd"), ("lora", 4, "adafactor"), ("lora", 8, "adamw")]
    assert cells[-1].params == {"technique.name": "dora", "technique.r": 8, "train.optimizer": "adafactor"}
    # the values reach the validated config, with the base config underneath
    last = cells[-1].config
    assert (last.technique.name, last.technique.options.r, last.train.optimizer) == ("dora", 8, "adafactor")
    assert last.train.max_steps == 2 and last.data.max_length == 64
    assert len({c.id for c in cells}) == 12


def test_technique_options_dropped_where_they_do_not_apply_and_duplicates_removed() -> None:
    cells = matrix({"technique.name": ["lora", "ia3"], "technique.r": [4, 8, 16]}).expand()
    # lora x 3 ranks, and ia3 once: it has no r, so its three combinations are one cell
    assert params(cells) == [
        {"technique.name": "lora", "technique.r": 4}, {"technique.name": "lora", "technique.r": 8},
        {"technique.name": "lora", "technique.r": 16}, {"technique.name": "ia3"}]
    assert [c.index for c in cells] == [0, 1, 2, 3]
    assert "r" not in cells[3].config.technique.model_extra
    assert [c.config.technique.options.r for c in cells[:3]] == [4, 8, 16]


def test_base_technique_decides_which_options_apply() -> None:
    spec = {"name": "m", **BASE, "technique": {"name": "ia3"}, "matrix": {"technique.r": [4, 8]}}
    cells = Matrix.from_dict(spec).expand()
    assert params(cells) == [{}]  # ia3 from the base config: r does not apply, one cell left


def test_base_technique_options_dropped_for_swept_techniques_that_lack_them() -> None:
    spec = {"name": "m", **BASE, "technique": {"name": "lora", "r": 4, "alpha": 8},
            "matrix": {"technique.name": ["lora", "ia3", "dora"]}}
    cells = Matrix.from_dict(spec).expand()
    assert [c.config.technique.name for c in cells] == ["lora", "ia3", "dora"]
    assert "r" not in cells[1].config.technique.model_extra
    assert (cells[0].config.technique.options.r, cells[2].config.technique.options.r) == (4, 4)
    # with the base technique itself, an unknown option is still the typo it is
    spec = {"name": "m", **BASE, "technique": {"name": "lora", "rank": 4}, "matrix": {"train.lr": [1e-4]}}
    with pytest.raises(ConfigError, match="rank: unknown option"):
        Matrix.from_dict(spec).expand()


def test_exclude_drops_matching_combinations() -> None:
    cells = matrix({"technique.name": ["lora", "ia3"], "train.optimizer": ["adamw", "sgd"]},
                   exclude=[{"technique": "ia3", "train.optimizer": "sgd"}]).expand()
    assert params(cells) == [
        {"technique.name": "lora", "train.optimizer": "adamw"}, {"technique.name": "lora", "train.optimizer": "sgd"},
        {"technique.name": "ia3", "train.optimizer": "adamw"}]
    # an exclude entry matches only when every key matches
    cells = matrix({"technique.name": ["lora", "ia3"], "train.optimizer": ["adamw", "sgd"]},
                   exclude=[{"technique.name": "ia3", "train.optimizer": "mezo"}]).expand()
    assert len(cells) == 4


def test_extra_cells_follow_the_product() -> None:
    cells = matrix({"technique.name": ["lora", "ia3"]},
                   cells=[{"technique": "full", "train.optimizer": "sgd"}, {"technique.name": "lora"}]).expand()
    # the second extra cell is the same config as cell 0: dropped as a duplicate
    assert params(cells) == [{"technique.name": "lora"}, {"technique.name": "ia3"},
                             {"technique.name": "full", "train.optimizer": "sgd"}]
    assert cells[2].config.technique.name == "full" and cells[2].config.train.optimizer == "sgd"
    assert cells[0].config.train.optimizer == "adamw"


def test_technique_alias() -> None:
    for key in ("technique", "techniques"):
        m = matrix({key: ["lora", "ia3"]})
        assert list(m.axes) == ["technique.name"]
        assert [c.config.technique.name for c in m.expand()] == ["lora", "ia3"]
    # a single value (not a list) is one value
    assert params(matrix({"technique": "dora"}).expand()) == [{"technique.name": "dora"}]


def test_labels_show_only_the_varying_axes() -> None:
    m = matrix({"technique.name": ["lora", "ia3"], "technique.r": [8], "train.optimizer": ["adamw"],
                "train.lr": [1e-4, 2e-4]})
    cells = m.expand()
    varying = m.varying(cells)
    # r varies too: lora cells have it, the ia3 cells do not
    assert varying == ["technique.name", "technique.r", "train.lr"]
    assert [c.label(varying) for c in cells] == ["lora r=8 lr=0.0001", "lora r=8 lr=0.0002", "ia3 lr=0.0001",
                                                 "ia3 lr=0.0002"]

    m = matrix({"technique.name": ["lora"], "train.optimizer": ["adamw", "sgd"]})
    cells = m.expand()
    assert m.varying(cells) == ["train.optimizer"]
    assert [c.label(m.varying(cells)) for c in cells] == ["optimizer=adamw", "optimizer=sgd"]
    # nothing varies: the technique names the cell
    m = matrix({"technique.name": ["ia3"]})
    assert [c.label(m.varying(m.expand())) for c in m.expand()] == ["ia3"]


def test_cell_ids_stable_across_axis_order_and_change_with_a_value() -> None:
    a = matrix({"technique.name": ["lora", "dora"], "train.optimizer": ["adamw", "sgd"]}).expand()
    b = matrix({"train.optimizer": ["sgd", "adamw"], "technique.name": ["dora", "lora"]}).expand()
    key = lambda c: (c.config.technique.name, c.config.train.optimizer)  # noqa: E731
    assert {key(c): c.id for c in a} == {key(c): c.id for c in b}
    assert [c.id for c in a] != [c.id for c in b]  # same cells, other order
    # where a run writes is not part of the id; any config value is
    cfg = a[0].config
    assert cell_id(cfg.model_copy(update={"output_dir": "/elsewhere", "run_name": "x"})) == a[0].id
    changed = matrix({"technique.name": ["lora"], "train.optimizer": ["adamw"], "train.lr": [3e-4]}).expand()
    assert changed[0].id != a[0].id
    other_base = Matrix.from_dict({"name": "m", **BASE, "train": {"max_steps": 3},
                                   "matrix": {"technique.name": ["lora"], "train.optimizer": ["adamw"]}}).expand()
    assert other_base[0].id != a[0].id
    # the id does not depend on the matrix's name either
    renamed = Matrix.from_dict({"name": "other", **BASE, "matrix": {"technique.name": ["lora"],
                                                                    "train.optimizer": ["adamw"]}}).expand()
    assert renamed[0].id == a[0].id


def test_bad_value_names_the_cell() -> None:
    m = matrix({"technique.name": ["lora"], "train.optimizer": ["adamw", "nonsense"]})
    with pytest.raises(ConfigError) as e:
        m.expand()
    msg = str(e.value)
    assert "cell 1" in msg and "train.optimizer=nonsense" in msg and "benchmark m" in msg
    assert "train.optimizer" in msg

    with pytest.raises(ConfigError, match=r"cell 0 \(technique.name=nosuchtechnique\)"):
        matrix({"technique.name": ["nosuchtechnique"]}).expand()
    with pytest.raises(ConfigError, match=r"cell 1 .*technique.r=-3"):
        matrix({"technique.r": [8, -3]}).expand()


def test_bad_spec_shapes() -> None:
    with pytest.raises(ConfigError, match="needs at least one value"):
        matrix({"technique.name": []})
    with pytest.raises(ConfigError, match="matrix: expected a mapping"):
        Matrix.from_dict({**BASE, "matrix": ["lora"]})
    with pytest.raises(ConfigError, match="exclude: each entry must be a mapping"):
        matrix({"technique.name": ["lora"]}, exclude=["ia3"])
    # the name is a folder under the runs dir: one that would leave it is refused, not silently used
    for bad in ("../escape", "a/b", ".."):
        with pytest.raises(ConfigError, match="cannot name a benchmark"):
            Matrix.from_dict({**BASE, "name": bad, "matrix": {}})
    # a file stem that is no safe name is cleaned, as the default name
    assert Matrix.from_dict({**BASE, "matrix": {}}, default_name="my bench").name == "my--bench"


def test_load_from_yaml(tmp_path) -> None:
    path = tmp_path / "techs.yaml"
    path.write_text("data: {path: toy.json}\nmatrix:\n  technique: [lora, ia3]\n  technique.r: [4, 8]\n"
                    "exclude:\n  - {technique.r: 8}\n")
    m = Matrix.load(path)
    assert m.name == "techs"  # the file's stem, when the matrix names none
    assert params(m.expand()) == [{"technique.name": "lora", "technique.r": 4}, {"technique.name": "ia3"}]
    assert m.base == {"data": {"path": "toy.json"}}
    # to_dict goes back through from_dict to the same cells
    assert [c.id for c in Matrix.from_dict(m.to_dict()).expand()] == [c.id for c in m.expand()]


def test_load_missing_or_invalid_file_names_it(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml") as e:
        Matrix.load(missing)
    assert "no such matrix file" in str(e.value)

    bad = tmp_path / "bad.yaml"
    bad.write_text("matrix: [unclosed\n  technique: {\n")
    with pytest.raises(ConfigError) as e:
        Matrix.load(bad)
    assert str(bad) in str(e.value) and "not valid YAML" in str(e.value)

    listing = tmp_path / "list.yaml"
    listing.write_text("- lora\n- ia3\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        Matrix.load(listing)
