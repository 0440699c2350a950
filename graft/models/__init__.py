"""Models: the catalog, resolution of names/paths/Hub ids, loading and GGUF conversion."""

from graft.models.catalog import CATALOG, CatalogEntry
from graft.models.load import ensure_folder, load_model, load_tokenizer, model_task
from graft.models.resolve import ModelSource, resolve

__all__ = ["CATALOG", "CatalogEntry", "ModelSource", "ensure_folder", "load_model", "load_tokenizer", "model_task", "resolve"]
