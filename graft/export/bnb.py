"""A merged model stored 4-bit (NF4/FP4) or 8-bit (LLM.int8) by bitsandbytes: a folder that plain
`AutoModelForCausalLM.from_pretrained` loads back quantised, given bitsandbytes (CPU or CUDA).

The adapter is folded into float32 weights first and the sum is quantised once, so a QLoRA update
is not rounded away by the 4-bit base it trained against.
"""

from __future__ import annotations

from pathlib import Path

from graft.errors import ConfigError
from graft.progress import NullProgress, Progress

BNB_QUANTS = ("nf4", "fp4", "int8")


def check_available() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("a 4-bit or 8-bit merged export needs bitsandbytes",
                          hint='pip install "graft[quant]"; or export float weights (--dtype float16)') from None


def quantization_config(quant: str):
    import torch
    from transformers import BitsAndBytesConfig

    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    # bf16 matmuls are emulated on CPU: far slower there, and no more exact than float32
    compute = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant, bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def save_quantized(merged: Path, out: Path, quant: str, progress: Progress | None = None) -> list[Path]:
    """Load the float32 merged folder `merged` quantised to `quant` and save it (weights, config with
    its quantization_config, tokenizer) in `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graft.export.merge import write_folder

    progress = progress or NullProgress()
    progress.log(f"quantising the merged model to {quant} with bitsandbytes")
    model = AutoModelForCausalLM.from_pretrained(merged, quantization_config=quantization_config(quant),
                                                 dtype=torch.float32, use_safetensors=True)
    progress.log(f"saving the {quant} model to {out}")
    return write_folder(model, AutoTokenizer.from_pretrained(merged), out)


def reload(folder: Path):
    """The saved folder as a user loads it: transformers reads the quantisation from config.json."""
    import warnings

    from transformers import AutoModelForCausalLM

    # said on every int8 matmul of a float32 input; the cast is how LLM.int8 works, not a fault
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    return AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
