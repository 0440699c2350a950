"""A third-party technique, installed as a package of its own, found through the `graft.techniques`
entry points and trained through the CLI, without a line of graft changed for it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import run_graft

PLUGIN = Path(__file__).parents[1] / "plugins" / "graft-norm-tuning"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """pip-installs the example plugin into a private folder (the test's venv stays untouched)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(PLUGIN, tmp / "src")  # building in place would leave build/ in the repo
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(src)], check=True, timeout=300)
    return target


def graft(plugin_path: Path | None, *args) -> subprocess.CompletedProcess:
    return run_graft(*args, pythonpath=plugin_path)


def test_plugin_is_listed_only_when_installed(plugin_path):
    with_plugin = graft(plugin_path, "techniques", "list", "--json")
    assert with_plugin.returncode == 0, with_plugin.stderr
    rows = {r["name"]: r for r in json.loads(with_plugin.stdout)}
    assert rows["norm-tuning"]["source"] == "graft-norm-tuning"
    assert rows["norm-tuning"]["family"] == "selective" and rows["norm-tuning"]["available"]
    assert rows["lora"]["source"] == "graft"  # built-ins arrive through the same entry points

    without = graft(None, "techniques", "list", "--json")
    assert "norm-tuning" not in {r["name"] for r in json.loads(without.stdout)}


def test_train_with_the_plugin_through_the_cli(plugin_path, tiny_model_dir, tiny_chat_data, tmp_path):
    p = graft(plugin_path, "train", "--model", tiny_model_dir, "--data", tiny_chat_data, "--technique", "norm-tuning",
              "--max-steps", 12, "--batch-size", 8, "--lr", 0.05, "--max-length", 64, "--set", "train.threads=1",
              "--set", "train.scheduler=constant", "--output-dir", tmp_path / "runs", "--run-name", "norm")
    assert p.returncode == 0, p.stdout + p.stderr
    run = tmp_path / "runs" / "norm"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["technique"] == "norm-tuning" and summary["status"] == "completed"
    # two RMSNorms per layer and the final one, 64 wide: 2 layers * 2 * 64 + 64
    assert summary["trainable_params"] == 2 * 2 * 64 + 64
    assert summary["final_loss"] < summary["first_loss"]
    assert (run / "adapter" / "norm_weights.safetensors").is_file()
    assert json.loads((run / "adapter" / "graft.json").read_text())["technique"] == "norm-tuning"

    scored = graft(plugin_path, "eval", run, "--limit", 4, "--json")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    # without the plugin installed the saved run names what is missing
    missing = graft(None, "eval", run, "--limit", 4)
    assert missing.returncode == 2 and "norm-tuning" in missing.stderr and "Traceback" not in missing.stderr


def test_unknown_technique_is_a_clear_error(tiny_model_dir, tiny_chat_data, tmp_path):
    p = graft(None, "train", "--model", tiny_model_dir, "--data", tiny_chat_data, "--technique", "nope",
              "--output-dir", tmp_path / "runs")
    assert p.returncode == 2 and "unknown technique 'nope'" in p.stderr and "lora" in p.stderr
    assert not (tmp_path / "runs").exists()
