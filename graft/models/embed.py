"""Sentence embeddings from an encoder (the bundled MiniLM by default), unit length.

A sentence-transformers model folder (modules.json: the bundled MiniLM, or any such model) is run by
sentence-transformers with its own pooling; any other encoder is mean-pooled here. Used by drift
detection (graft/monitor) and retrieval (graft/rag). Unit vectors make the dot product the cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from graft.progress import NullProgress, Progress


class Embedder:
    def __init__(self, model: str = "minilm-l6", batch_size: int = 64, max_length: int = 256):
        from graft.models.load import load_model
        from graft.models.resolve import resolve

        self.name, self.batch_size, self.max_length = model, batch_size, max_length
        self._st = _sentence_transformer(resolve(model).folder, max_length)
        if self._st is not None:
            self.model, self.tokenizer = None, self._st.tokenizer
            dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self.dim: int = dim()
        else:
            self.model, self.tokenizer = load_model(model, task="encoder")
            self.model.eval()
            self.dim = self.model.config.hidden_size

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """[len(texts), dim] float32, each row L2-normalised; texts longer than max_length are truncated."""
        progress = progress or NullProgress()
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # similar lengths share a batch, so little of each batch is padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        progress.start("embed", total=len(texts))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                out[idx] = self._batch([texts[i] for i in idx])
                progress.advance("embed", len(idx))
        progress.finish("embed")
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        if self._st is not None:
            return self._st.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False).astype(np.float32)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).float().numpy()

    def count_tokens(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text, untruncated and without special tokens."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return np.array([len(i) for i in ids], dtype=np.int64)


def _sentence_transformer(folder, max_length: int):
    """The folder as a SentenceTransformer when it is one and the library is installed, else None."""
    from pathlib import Path

    if folder is None or not (Path(folder) / "modules.json").is_file():
        return None
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    st.max_seq_length = min(st.max_seq_length or max_length, max_length)
    return st
