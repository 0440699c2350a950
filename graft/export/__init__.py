"""Export a trained run: merged weights for transformers, GGUF for llama.cpp; every export is
reloaded and checked against the trained model, and the agreement goes into its manifest."""

from graft.export.run import FORMATS, export

__all__ = ["FORMATS", "export"]
