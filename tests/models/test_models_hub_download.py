"""`graft models download` against a local stand-in for the Hub: only the safetensors, JSON and
tokenizer files come, byte for byte, and a repo the Hub does not know is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

from testkit import fake_hub, run_graft

FILES = {"config.json": b'{"model_type": "llama"}', "model.safetensors": b"\x01" * 3000,
         "tokenizer.json": b'{"version": "1.0"}', "pytorch_model.bin": b"pickled weights"}


def test_download_fetches_only_the_files_a_model_needs(tmp_path):
    with fake_hub("org/tiny", FILES) as (url, requested):
        env = {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
        done = run_graft("models", "download", "org/tiny", env=env)
        missing = run_graft("models", "download", "org/absent", env=env)
    assert done.returncode == 0, done.stderr
    folder = Path(json.loads(done.stdout.strip().splitlines()[-1])["path"])
    assert folder.is_relative_to(tmp_path / "hf")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {k: v for k, v in FILES.items() if not k.endswith(".bin")}
    assert not any(p.endswith(".bin") for p in requested)  # pickled weights are never even fetched
    assert missing.returncode != 0 and "'org/absent' not found on the Hub" in missing.stderr
