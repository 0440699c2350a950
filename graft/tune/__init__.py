"""Hyper-parameter search over run configs with Optuna (`graft tune`): see docs/tune.md."""

from graft.tune.space import Space
from graft.tune.study import TuneResult, tune

__all__ = ["Space", "TuneResult", "tune"]
