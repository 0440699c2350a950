"""The one progress interface every long operation reports through.

The CLI renders it with Rich, the server's job worker turns it into rows, the benchmark runner
records it. Producers never know which.
"""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def start(self, task: str, total: int | None = None, completed: int = 0) -> None: ...

    def advance(self, task: str, n: int = 1, **fields: Any) -> None: ...

    def log(self, message: str) -> None: ...

    def finish(self, task: str) -> None: ...


class NullProgress:
    """Reports nothing: the default for library calls."""

    def start(self, task: str, total: int | None = None, completed: int = 0) -> None:
        pass

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def finish(self, task: str) -> None:
        pass
