"""What the benchmarks share: one measurement per child process (so each peak memory is its own),
and the report printed as JSON and optionally written to a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


class ChildFailed(RuntimeError):
    pass


def in_child(script: str, *args: str) -> dict:
    """Run `python script *args` and return the JSON object its last stdout line holds."""
    p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise ChildFailed(p.stderr.strip()[-3000:] or f"exit {p.returncode}")
    row = json.loads(p.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in row.items() if k != "breakdown"}), file=sys.stderr)  # progress as it goes
    return row


def emit(report: dict, out: str | None = None) -> None:
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    print(text)
