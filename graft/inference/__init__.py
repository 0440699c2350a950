"""Use a trained model: load a run or adapter (`load`), stream replies (`stream`), serve several
adapters on one base (`pool`)."""

from graft.inference.load import Loaded, load_for_inference
from graft.inference.pool import ModelPool, open_pool
from graft.inference.stream import stream_reply

__all__ = ["Loaded", "ModelPool", "load_for_inference", "open_pool", "stream_reply"]
