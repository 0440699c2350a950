"""Optional llama-cpp-python: K-quants by requantizing our GGUF, and logits for verifying an export.

Nothing here imports llama_cpp at module import time, so graft works the same without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from graft.errors import GraftError

# quant name -> llama_cpp's LLAMA_FTYPE_MOSTLY_* suffix. Each one checked to load and run after
# requantizing an f16 export. The IQ1/IQ2/IQ3_XXS types are left out: without an importance matrix
# llama.cpp refuses them (or produces noise).
LLAMA_CPP_QUANTS: dict[str, str] = {
    q: q.upper()
    for q in (
        "q2_k", "q2_k_s", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
        "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "iq4_xs",
    )
}


class LlamaCppUnavailableError(GraftError):
    """llama-cpp-python is not installed."""


def available() -> bool:
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except ValueError:  # an entry in sys.modules without a __spec__
        return False


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:
        raise LlamaCppUnavailableError(
            f"llama-cpp-python is needed for this and is not installed ({e})",
            hint='pip install "graft[llama]"  (builds llama.cpp from source: about 11 minutes on 2 cores)',
        ) from None
    return llama_cpp


def requantize(src_gguf: Path, dst_gguf: Path, quant: str, threads: int = 2) -> None:
    """Quantize an f16/f32 GGUF into one of LLAMA_CPP_QUANTS with llama.cpp's own quantizer."""
    from graft.errors import ConfigError

    quant = quant.lower()
    if quant not in LLAMA_CPP_QUANTS:
        raise ConfigError(f"llama.cpp quantisation '{quant}' is not supported; choose one of: {', '.join(LLAMA_CPP_QUANTS)}")
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{LLAMA_CPP_QUANTS[quant]}")
    params.nthread = threads
    Path(dst_gguf).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(dst_gguf).with_name(Path(dst_gguf).name + ".partial")
    try:
        rc = llama_cpp.llama_model_quantize(str(src_gguf).encode(), str(partial).encode(), params)
        if rc != 0:
            raise GraftError(f"llama.cpp could not quantize {src_gguf} to {quant} (return code {rc})")
        partial.replace(dst_gguf)
    finally:
        partial.unlink(missing_ok=True)


def logits_fn(gguf_path: Path, n_ctx: int = 1024, threads: int = 2) -> Callable[[list[int]], np.ndarray]:
    """A function ids -> [len(ids), vocab] float32 logits from llama.cpp running gguf_path."""
    llama_cpp = _llama_cpp()
    try:
        with plain_cpu_buffers(llama_cpp):
            llm = llama_cpp.Llama(
                model_path=str(gguf_path), logits_all=True, n_ctx=n_ctx, n_threads=threads, verbose=False,
            )
    except ValueError as e:  # llama.cpp rejected the file; its reason went to stderr
        raise GraftError(f"llama.cpp cannot load {gguf_path}: {e}") from e

    def logits(ids: list[int]) -> np.ndarray:
        if len(ids) > n_ctx:
            raise GraftError(f"{len(ids)} tokens do not fit llama.cpp's context of {n_ctx}")
        llm.reset()  # each call scores a fresh sequence, not a continuation of the last
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)

    # Free the model while the interpreter is still whole; Llama.__del__ at shutdown raises TypeErrors.
    weakref.finalize(logits, llm.close)
    return logits


@contextlib.contextmanager
def plain_cpu_buffers(llama_cpp) -> Iterator[None]:
    """Load weights without llama.cpp's CPU "extra buffer types" (repacked/AMX layouts): with them,
    llama-cpp-python 0.3.36 segfaults on any batch of more than one token for Q8_0/Q4_0 weights
    (measured on this project's Xeon with AMX). Llama() takes no such option, so its default
    parameters are wrapped while it loads. Costs some speed only."""
    module = llama_cpp.llama_cpp
    default = module.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = default
