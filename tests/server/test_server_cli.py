"""`graft serve` (through a Typer app holding only it, with uvicorn.run replaced) and `graft chat --adapter`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from graft.cli.serve import serve
from graft.errors import ConfigError

ASK = "What colour is the sky?"


@pytest.fixture
def cli(monkeypatch):
    """Runs `serve` with uvicorn.run replaced: returns what it would have served."""
    import uvicorn

    app = typer.Typer()
    app.command()(serve)
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **kw: served.update(app=asgi, **kw))

    def run(*args, env=None):
        result = CliRunner().invoke(app, [str(a) for a in args], env=env)
        return result, served

    return run


def test_serve_refuses_a_public_host_without_a_token(cli, monkeypatch):
    monkeypatch.delenv("GRAFT_API_TOKEN", raising=False)
    result, served = cli("no-such-model", "--host", "0.0.0.0")
    assert isinstance(result.exception, ConfigError) and "without an API token" in str(result.exception)
    assert not served  # refused before loading anything


def test_serve_a_run_with_more_adapters(cli, tuned_run, lora_folder, tmp_path):
    db = tmp_path / "req.db"
    result, served = cli(tuned_run, "--adapter", f"alpha={lora_folder}", "--host", "0.0.0.0", "--port", 9999,
                         "--no-log-prompts", "--db", db, env={"GRAFT_API_TOKEN": "env-token"})
    assert result.exit_code == 0, result.output
    app = served["app"]
    assert (served["host"], served["port"]) == ("0.0.0.0", 9999)
    settings = app.state.settings
    assert settings.token.get_secret_value() == "env-token" and settings.log_prompts is False and settings.db == str(db)
    pool = app.state.pool
    assert [(m.id, m.shared) for m in pool.models()] == [(pool.base_id, True), ("colours", True), ("alpha", True)]


def test_chat_switches_adapters_mid_conversation(tuned_run, lora_folder, served_pool):
    script = f"{ASK}\n/models\n/use alpha\n{ASK}\n/use nope\n/exit\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([sys.executable, "-c", "from graft.cli import main; main()", "chat", str(tuned_run),
                        "--adapter", f"alpha={lora_folder}", "--max-new-tokens", "6"],
                       input=script, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    history = [{"role": "user", "content": ASK}]
    first = served_pool.complete("colours", history, max_new_tokens=6).text
    history += [{"role": "assistant", "content": first.strip()}, {"role": "user", "content": ASK}]
    second = served_pool.complete("alpha", history, max_new_tokens=6).text
    out = p.stdout
    assert "chatting with colours" in out and "shares the base" in out
    assert f"> {first}\n" in out and f"> {second}\n" in out, out
    assert out.index(first) < out.index("* colours") < out.index("now alpha") < out.index(second)
    assert "no model 'nope'" in out
