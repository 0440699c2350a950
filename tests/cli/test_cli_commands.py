"""The `graft` command line, run for real in a subprocess on the tiny local model.

Every command goes through the console-script entry point (graft.cli:main) in a fresh Python, so
exit codes, stdout/stderr and the run folder are exactly what a user sees. One trained run is
shared by the tests that only read it (eval, chat, the existing-folder error).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ENTRY = "from graft.cli import main; main()"


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,  # includes the session's private GRAFT_HOME (tests/conftest.py)
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",  # nothing here needs the network; a slip must not hang on it
        # Rich wraps and truncates at 80 columns when stdout is not a terminal; give it room so
        # assertions see whole names and paths (see test_models_list_at_default_width for 80).
        "COLUMNS": "200",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(extra)
    return env


def graft(*args: object, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *map(str, args)],
        cwd=cwd, env=env or _env(), input=input, capture_output=True, text=True, timeout=timeout,
    )


def _show(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-3000:]}"


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, _show(p)
    assert "Traceback" not in p.stderr, _show(p)
    return p


def user_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, an 'error:' line, no traceback, and every needle in stderr; returns stderr."""
    assert p.returncode == 2, _show(p)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, _show(p)
    assert "error:" in p.stderr, _show(p)
    # Rich may wrap a long message; compare with the line breaks taken out
    flat = " ".join(p.stderr.split())
    for needle in needles:
        assert needle in flat, f"{needle!r} not in stderr\n{_show(p)}"
    return flat


def train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r["type"] == "train"]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# -- shared inputs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def alpaca_file(work: Path, helpers) -> Path:
    path = work / "toy_alpaca.json"
    path.write_text(json.dumps(helpers.toy_rows()))
    return path


@pytest.fixture(scope="module")
def bad_alpaca_file(work: Path, helpers) -> Path:
    """The toy rows with row 3 (1-based) missing its answer."""
    rows = helpers.toy_rows()
    rows[2]["output"] = ""
    path = work / "bad_row3.json"
    path.write_text(json.dumps(rows))
    return path


def train_args(model: Path, data: Path, out: Path, name: str, steps: int = 6) -> list[str]:
    return [
        "train", "--model", model, "--data", data, "--max-steps", steps, "--batch-size", 8, "--lr", "5e-3",
        "--output-dir", out, "--run-name", name, "--set", "train.threads=1", "--set", "data.eval_size=8",
        "--max-length", 64,
    ]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, alpaca_file, work, _private_graft_home):
    """`graft train ... --run-name r1`, run once for the module: (completed process, run folder, args)."""
    out = work / "runs"
    args = train_args(tiny_model_dir, alpaca_file, out, "r1")
    proc = graft(*args, cwd=work)
    return proc, out / "r1", args


# -- 1. train from flags -------------------------------------------------------------------------


def test_train_from_flags_writes_a_complete_run_folder(trained, tiny_model_dir, alpaca_file, work):
    proc, run, _ = trained
    ok(proc)

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["name"] == str(tiny_model_dir)
    assert cfg["data"]["path"] == str(alpaca_file)
    assert (cfg["data"]["max_length"], cfg["data"]["eval_size"]) == (64, 8)
    assert cfg["train"]["max_steps"] == 6
    assert cfg["train"]["batch_size"] == 8
    assert cfg["train"]["lr"] == pytest.approx(5e-3)
    assert cfg["train"]["threads"] == 1
    assert (cfg["output_dir"], cfg["run_name"]) == (str(work / "runs"), "r1")

    assert [r["step"] for r in train_rows(run)] == [1, 2, 3, 4, 5, 6]
    adapter_cfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8  # the LoRA default
    s = summary(run)
    assert (s["status"], s["steps"], s["total_steps"]) == ("completed", 6, 6)
    assert s["data"]["eval_examples"] == 8 and s["data"]["train_examples"] == 56
    assert "eval_loss" in s

    assert "done" in proc.stdout
    assert "r1" in proc.stdout  # names the run folder
    assert "6 steps" in proc.stdout


# -- 2. train from YAML, flags win --------------------------------------------------------------


def test_train_from_yaml_with_a_flag_overriding_it(tiny_model_dir, alpaca_file, tmp_path):
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({
        "model": {"name": str(tiny_model_dir)},
        "data": {"path": str(alpaca_file), "max_length": 64, "eval_size": 8},
        "train": {"max_steps": 3, "batch_size": 4, "lr": 1e-3, "threads": 1, "scheduler": "constant"},
        "output_dir": str(tmp_path / "runs"),
        "run_name": "from-yaml",
    }))
    proc = ok(graft("train", "-c", run_yaml, "--lr", "2e-3", "--set", "train.seed=7", cwd=tmp_path))
    run = tmp_path / "runs" / "from-yaml"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["lr"] == pytest.approx(2e-3), "the --lr flag must override the YAML value"
    assert cfg["train"]["seed"] == 7
    assert (cfg["train"]["max_steps"], cfg["train"]["batch_size"], cfg["train"]["scheduler"]) == (3, 4, "constant")
    assert [r["step"] for r in train_rows(run)] == [1, 2, 3]
    assert all(r["lr"] == pytest.approx(2e-3) for r in train_rows(run)), "constant schedule at the flag's lr"
    assert summary(run)["status"] == "completed"
    assert "done" in proc.stdout


# -- 3. user errors: a clear message, exit 2, no traceback --------------------------------------


def test_malformed_row_names_file_row_and_field(tiny_model_dir, bad_alpaca_file, tmp_path):
    p = graft(*train_args(tiny_model_dir, bad_alpaca_file, tmp_path / "runs", "bad"), cwd=tmp_path)
    flat = user_error(p, bad_alpaca_file.name, "row 3", "output")
    assert "--skip-bad-rows" in flat  # the hint says how to go on
    assert not (tmp_path / "runs" / "bad").exists(), "a bad row must leave no run folder to trip over"


def test_skip_bad_rows_trains_and_counts_the_skipped_row(tiny_model_dir, bad_alpaca_file, tmp_path):
    args = train_args(tiny_model_dir, bad_alpaca_file, tmp_path / "runs", "skip", steps=2)
    ok(graft(*args, "--skip-bad-rows", cwd=tmp_path))
    s = summary(tmp_path / "runs" / "skip")
    assert s["status"] == "completed"
    assert s["data"]["rows_skipped"] == 1
    assert s["data"]["rows_read"] == 64
    assert s["data"]["train_examples"] + s["data"]["eval_examples"] == 63
    assert "row 3" in (tmp_path / "runs" / "skip" / "train.log").read_text()


def test_missing_data_file(tiny_model_dir, tmp_path):
    missing = tmp_path / "nowhere" / "train.jsonl"
    p = graft(*train_args(tiny_model_dir, missing, tmp_path / "runs", "m"), cwd=tmp_path)
    user_error(p, "train.jsonl")
    assert not (tmp_path / "runs" / "m").exists()


def test_unknown_key_in_yaml_is_named(tiny_model_dir, alpaca_file, tmp_path):
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({
        "model": {"name": str(tiny_model_dir)},
        "data": {"path": str(alpaca_file)},
        "train": {"learning_rate": 1e-3},
        "output_dir": str(tmp_path / "runs"),
    }))
    user_error(graft("train", "-c", run_yaml, cwd=tmp_path), "train.learning_rate", "run.yaml", "unknown option")
    assert not (tmp_path / "runs").exists(), "a config error must not leave a run folder behind"


def test_bad_value_names_the_key(tiny_model_dir, alpaca_file, tmp_path):
    args = train_args(tiny_model_dir, alpaca_file, tmp_path / "runs", "neg")
    args[args.index("--lr") + 1] = "-1"
    user_error(graft(*args, cwd=tmp_path), "train.lr", "greater than 0")
    assert not (tmp_path / "runs").exists()


def test_unknown_model_name(alpaca_file, tmp_path):
    p = graft(*train_args("no-such-model-xyz", alpaca_file, tmp_path / "runs", "nm"), cwd=tmp_path)
    user_error(p, "no-such-model-xyz", "graft models list")
    assert not (tmp_path / "runs" / "nm").exists()


def test_hub_id_offline_fails_fast(alpaca_file, tmp_path):
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    env = _env(HF_HUB_OFFLINE="1", HF_HOME=str(hf_home))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    t0 = time.monotonic()
    p = graft(*train_args("some-org/some-model", alpaca_file, tmp_path / "runs", "hub"), cwd=tmp_path, env=env,
              timeout=60)
    took = time.monotonic() - t0
    flat = user_error(p, "some-org/some-model")
    assert "not reachable" in flat or "offline" in flat.lower()
    assert took < 10, f"an offline Hub id took {took:.1f}s to fail"


def test_existing_run_folder_without_resume_suggests_resume(trained, work):
    _, run, args = trained
    before = (run / "metrics.jsonl").read_text()
    user_error(graft(*args, cwd=work), str(run.name), "exists", "--resume")
    assert (run / "metrics.jsonl").read_text() == before, "the refused run must not touch the existing folder"
    assert summary(run)["status"] == "completed"


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    user_error(graft("train", "--resume", cwd=tmp_path), "--resume", "--run-dir")


def test_resume_of_a_folder_that_is_no_run(tmp_path):
    user_error(graft("train", "--resume", "--run-dir", tmp_path, cwd=tmp_path), "not a graft run folder")


def test_train_without_data_or_config(tmp_path):
    user_error(graft("train", cwd=tmp_path), "--config", "--data")


# -- 4. SIGKILL, then --resume through the CLI --------------------------------------------------


def _completed_checkpoints(run: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*/state.json"))


def test_sigkill_then_resume_finishes_the_run(tiny_model_dir, alpaca_file, tmp_path):
    total = 100
    out = tmp_path / "runs"
    run = out / "rk"
    args = train_args(tiny_model_dir, alpaca_file, out, "rk", steps=total) + ["--checkpoint-every", 4]
    with open(tmp_path / "stdout", "w") as so, open(tmp_path / "stderr", "w") as se:
        proc = subprocess.Popen([sys.executable, "-c", ENTRY, *map(str, args)], cwd=tmp_path, env=_env(),
                                stdout=so, stderr=se)
        try:
            deadline = time.monotonic() + 60
            while not (run / "checkpoints").is_dir() or not _completed_checkpoints(run):
                assert proc.poll() is None, f"train exited ({proc.returncode}) before a checkpoint:\n" + (
                    tmp_path / "stderr").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 60 s"
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL

    killed_at = max(r["step"] for r in train_rows(run))
    assert killed_at < total, "the run finished before the kill; the test proves nothing"
    assert summary(run)["status"] == "running"
    assert not (run / "adapter").exists()
    resume_from = max(_completed_checkpoints(run))
    assert resume_from >= 4 and resume_from % 4 == 0

    p = ok(graft("train", "--resume", "--run-dir", run, cwd=tmp_path))
    assert "done" in p.stdout
    s = summary(run)
    assert (s["status"], s["steps"], s["total_steps"]) == ("completed", total, total)
    steps = [r["step"] for r in train_rows(run)]
    assert sorted(steps) == list(range(1, total + 1)), "every step logged exactly once"
    assert len(steps) == len(set(steps))
    assert f"resumed from step-{resume_from:06d} (step {resume_from} of {total})" in (run / "train.log").read_text()
    assert (run / "adapter" / "adapter_config.json").is_file()
    # the resumed run keeps the config it was started with
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["max_steps"] == total


# -- 5. eval -------------------------------------------------------------------------------------


def test_eval_compare_base_json(trained):
    _, run, _ = trained
    # a narrow "terminal": the JSON must stay parseable when piped, whatever the width
    p = ok(graft("eval", run, "--compare-base", "--json", "--limit", 8, env=_env(COLUMNS="40")))
    result = json.loads(p.stdout)
    assert result["base_model"] and result["target"] == str(run)
    for side in ("base", "tuned"):
        assert result[side]["examples"] == 8
        assert result[side]["perplexity"] > 1.0
        assert 0.0 <= result[side]["exact_match"] <= 100.0
    # the adapter was trained for six steps at lr 5e-3: the held-out loss must differ from the base's
    assert result["tuned"]["perplexity"] != pytest.approx(result["base"]["perplexity"], rel=1e-6)


def test_eval_on_a_data_file_with_limit(trained, alpaca_file):
    _, run, _ = trained
    p = ok(graft("eval", run, "--data", alpaca_file, "--limit", 5))
    flat = " ".join(p.stdout.split())
    assert "(5 examples)" in flat
    assert "perplexity" in flat and "exact_match" in flat
    assert "tuned" in flat and "base" not in flat, "no --compare-base: only the tuned column"
    assert "expected: The apple is red." in flat  # samples come from the --data file, row 1 first


def test_eval_compare_base_on_a_plain_model_is_an_error(tiny_model_dir):
    user_error(graft("eval", tiny_model_dir, "--compare-base"), "--compare-base", "plain model")


# -- 6. chat -------------------------------------------------------------------------------------


def test_chat_one_prompt(trained):
    _, run, _ = trained
    p = ok(graft("chat", run, "--prompt", "What colour is the sky?", "--max-new-tokens", 5))
    assert p.stdout.strip(), _show(p)


def test_chat_interactive_until_exit(trained):
    _, run, _ = trained
    p = ok(graft("chat", run, "--max-new-tokens", 5, input="hello\n/exit\n", timeout=60))
    assert "chatting with" in p.stdout
    assert p.stdout.count("> ") >= 2, "a prompt for 'hello', then one for '/exit'"
    # /exit returns at once; reaching the end of stdin instead would print a newline after the prompt
    assert p.stdout.endswith("> "), "the session ended at /exit, not at the end of input"


# -- 7. models and data --------------------------------------------------------------------------


def test_models_list():
    p = ok(graft("models", "list"))
    assert "smollm2-135m-instruct" in p.stdout
    assert "minilm-l6" in p.stdout


# Rich assumes 80 columns when piped; the name column must still be readable in full.
def test_models_list_at_default_width():
    env = _env()
    env.pop("COLUMNS")
    p = ok(graft("models", "list", env=env))
    assert "smollm2-135m-instruct" in p.stdout, p.stdout


def test_models_info_catalog_name():
    p = ok(graft("models", "info", "minilm-l6"))
    fields = dict(line.split(None, 1) for line in p.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert fields["hidden_size"].strip() == "384"
    assert fields["architecture"].strip() == "BertModel"


def test_models_info_local_folder(tiny_model_dir):
    p = ok(graft("models", "info", tiny_model_dir))
    fields = dict(line.split(None, 1) for line in p.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert fields["origin"].strip() == "folder"
    assert fields["hidden_size"].strip() == "64"
    assert fields["num_hidden_layers"].strip() == "2"
    assert fields["architecture"].strip() == "LlamaForCausalLM"


def test_data_inspect(alpaca_file):
    p = ok(graft("data", "inspect", alpaca_file))
    flat = " ".join(p.stdout.split())
    assert "format alpaca, 64 rows read, 64 usable, 0 skipped" in flat
    assert "What colour is the apple?" in p.stdout  # an example is shown


def test_data_inspect_bad_row(bad_alpaca_file):
    user_error(graft("data", "inspect", bad_alpaca_file), bad_alpaca_file.name, "row 3", "output")


def test_data_inspect_skip_bad_rows(bad_alpaca_file):
    p = ok(graft("data", "inspect", bad_alpaca_file, "--skip-bad-rows"))
    flat = " ".join(p.stdout.split())
    assert "64 rows read, 63 usable, 1 skipped" in flat
    assert "row 3" in flat


# -- 8. help -------------------------------------------------------------------------------------


def test_help_lists_the_commands():
    p = ok(graft("--help"))
    for command in ("train", "eval", "chat", "quickstart", "models", "data"):
        assert command in p.stdout.split() or f" {command} " in p.stdout, f"{command} missing from --help"


# Usage errors are click's: exit 2 with a usage message, no traceback.
@pytest.mark.parametrize("args, needle", [
    (["trian"], "trian"),                                  # unknown command
    (["train", "--learning-rate", "1e-3"], "--learning-rate"),  # unknown option
    (["train", "--lr", "abc"], "--lr"),                    # a value of the wrong type
])
def test_usage_errors_exit_2_without_traceback(args, needle):
    p = graft(*args)
    assert p.returncode == 2, _show(p)
    assert "Traceback" not in p.stderr, _show(p)
    assert needle in p.stderr, _show(p)
