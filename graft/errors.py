"""Errors a user can cause. The CLI and the API render these without a traceback."""

from __future__ import annotations


class GraftError(Exception):
    """Base class: something the user can fix (a path, a row, an option)."""

    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint:
            self.hint = hint


class ConfigError(GraftError):
    """A config file, field or CLI option is invalid."""


class DataError(GraftError):
    """A dataset cannot be read or a row is malformed."""


class DataRowError(DataError):
    """One row of a dataset is malformed; names the file, the row (1-based) and the field."""

    def __init__(self, file: str, row: int, field: str | None, problem: str):
        self.file, self.row, self.field, self.problem = file, row, field, problem
        where = f"{file} row {row}" + (f", field '{field}'" if field else "")
        super().__init__(
            f"{where}: {problem}",
            hint="fix the row, or pass --skip-bad-rows to skip malformed rows and count them",
        )


class NotFoundError(GraftError):
    """Something named by the user (a model, job, dataset, run) does not exist."""


class ConflictError(GraftError):
    """The thing exists but its state forbids the request (cancelling a finished job, say)."""


class ModelNotFoundError(NotFoundError):
    """A model name, path or Hub id cannot be resolved."""


class OfflineError(GraftError):
    """Something needs the network and there is none."""


class TechniqueUnavailableError(GraftError):
    """A fine-tuning technique is unknown or cannot run on this machine."""


class RunError(GraftError):
    """A run folder is missing, incomplete, or cannot be resumed."""


class DoesNotFitError(GraftError):
    """The memory estimate says the run cannot fit the device; the hint names the cheapest change that would."""


class StopTraining(Exception):
    """Raised by a training callback (a tuner pruning a trial, say) to end the run early on purpose.

    The run keeps its metrics and ends with status "stopped" and this reason; it is not a failure.
    """
