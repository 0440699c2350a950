"""One benchmark cell in its own process: `python -m graft.bench.cell CONFIG.json`.

Trains as the config says and reports progress on stdout as JSON lines, which the runner reads
for its ETA. Everything the record needs is read afterwards from the run folder, so a cell that
crashes (or is killed for memory) still leaves what it logged.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PREFIX = "@graft-cell "


class LineProgress:
    """The Progress interface as `@graft-cell {json}` lines on stdout."""

    def start(self, task: str, total: int | None = None, completed: int = 0) -> None:
        self._emit({"event": "start", "task": task, "total": total, "completed": completed})

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        self._emit({"event": "advance", "task": task, "n": n, **fields})

    def log(self, message: str) -> None:
        self._emit({"event": "log", "message": message})

    def finish(self, task: str) -> None:
        self._emit({"event": "finish", "task": task})

    @staticmethod
    def _emit(obj: dict) -> None:
        print(PREFIX + json.dumps(obj, default=str), flush=True)


def main(argv: list[str]) -> int:
    from graft.config import RunConfig
    from graft.errors import GraftError
    from graft.train.recipe import train

    cfg = RunConfig.from_dict(json.loads(open(argv[0]).read()), source=argv[0])
    try:
        train(cfg, progress=LineProgress())
    except GraftError as e:  # a clear message, not a traceback, for the cell's error column
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
