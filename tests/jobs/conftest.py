"""Jobs tests: a train spec on the tiny Llama, and waiting for a job to reach a state."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest


@pytest.fixture
def train_spec(tiny_model_dir, tmp_path, helpers):
    """spec(**dotted_overrides) -> a train job spec (RunConfig dict) for the tiny model and toy data."""
    data = tmp_path / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))

    def spec(**overrides) -> dict:
        return helpers.tiny_config(tiny_model_dir, data, tmp_path / "ignored", **{"run_name": None, **overrides}).model_dump(mode="json")

    return spec


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


def wait_for(store, job_id: str, until, timeout: float = 120.0, what: str = ""):
    """Poll the job until `until(job)` holds; returns the job."""
    deadline = time.monotonic() + timeout
    while True:
        job = store.get(job_id)
        if until(job):
            return job
        assert time.monotonic() < deadline, f"timed out waiting for {what or until}: job is {job.to_dict()}"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def wait():
    return wait_for
