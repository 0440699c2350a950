"""`graft techniques list|show|compare` as a user sees them."""

from __future__ import annotations

import json

from graft.techniques.counting import count_trainable
from testkit import run_graft


def test_list_shows_every_builtin_with_family_kinds_requirements_and_availability():
    p = run_graft("techniques", "list")
    assert p.returncode == 0, p.stderr
    for name in ("lora", "qlora", "prompt-tuning", "bottleneck", "full", "vera"):
        assert name in p.stdout
    qlora = next(line for line in p.stdout.splitlines() if "│ qlora " in line)
    assert "quantised" in qlora and "bitsandbytes>=0.48" in qlora and "yes" in qlora and "lm, cls" in qlora


def test_show_lists_options_with_defaults():
    p = run_graft("techniques", "show", "adalora")
    assert p.returncode == 0, p.stderr
    for option in ("init_r", "target_r", "orth_reg_weight", "tinit"):
        assert option in p.stdout
    unknown = run_graft("techniques", "show", "nope")
    assert unknown.returncode == 2 and "unknown technique 'nope'" in unknown.stderr


def test_compare_counts_as_peft_does_without_loading_weights(tiny_model_dir):
    p = run_graft("techniques", "compare", "--model", tiny_model_dir, "--techniques", "lora,ia3,prompt-tuning",
                  "-o", "lora.r=4", "--json")
    assert p.returncode == 0, p.stderr
    rows = {r["technique"]: r for r in json.loads(p.stdout)["rows"]}
    assert rows["lora"]["trainable"] == count_trainable(tiny_model_dir, "lora", {"r": 4})["trainable"]
    assert rows["prompt-tuning"]["trainable"] == 20 * 64  # 20 virtual tokens x hidden size
    assert rows["ia3"]["trainable"] < rows["lora"]["trainable"]
    bad = run_graft("techniques", "compare", "--model", tiny_model_dir, "-o", "r=4")
    assert bad.returncode == 2 and "TECHNIQUE.OPTION=VALUE" in bad.stderr


def test_a_malformed_technique_option_names_the_flag(tiny_chat_data, tmp_path):
    p = run_graft("train", "--data", tiny_chat_data, "-o", "rr", "--output-dir", tmp_path / "runs")
    assert p.returncode == 2 and "--option 'rr': expected KEY=VALUE" in p.stderr
    assert not (tmp_path / "runs").exists()
