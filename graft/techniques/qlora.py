"""QLoRA and QDoRA: LoRA (or DoRA) trained on top of a frozen base stored in 4-bit (bitsandbytes).

The base is quantised while it loads (`load_options` hands transformers a BitsAndBytesConfig),
prepared with peft's prepare_model_for_kbit_training, then wrapped like plain LoRA. What is saved is
a standard PEFT adapter: peft loads it onto a 4-bit or a full-precision copy of the same base.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from graft.errors import ConfigError
from graft.techniques.lora import LoraSettings, lora_config
from graft.techniques.peft_common import wrap
from graft.techniques.requirements import package
from graft.techniques.technique import ApplyContext, MemoryProfile, ModelKind, Technique


class QLoraSettings(LoraSettings):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type of the frozen base")
    double_quant: bool = Field(True, description="quantise the quantisation constants too (~0.4 bit/weight less)")
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="dtype the 4-bit weights are dequantised to for matmuls; auto: bfloat16 on a CUDA GPU "
        "that has it, else float32 (on CPU bf16 matmuls are emulated and far slower)")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto", description="recompute activations in backward to save memory; auto: on with a CUDA GPU "
        "(memory is what QLoRA is for there), off on CPU (compute is the scarce thing there)")


def compute_dtype(s: QLoraSettings):
    import torch

    cuda = torch.cuda.is_available()
    if s.compute_dtype == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if s.compute_dtype == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("technique.compute_dtype=bfloat16: this GPU has no bfloat16", hint="use float16 or auto")
    return getattr(torch, s.compute_dtype)  # bfloat16 on CPU is allowed: correct, only slow


# Task heads of classifier models, by the module names transformers gives them (matched as name
# suffixes or prefixes): BERT/RoBERTa/DistilBERT/DeBERTa ("pooler"), Llama-style ("score"), BART.
HEADS = ["classifier", "score", "pooler", "classification_head"]


def load_options(s: QLoraSettings, kind: ModelKind) -> dict:
    from transformers import BitsAndBytesConfig

    extra = {}
    if kind == "classification":
        # transformers keeps a causal LM's lm_head unquantised on its own, but misses a head with a
        # bias (it skips "classifier.bias", not "classifier"); a 4-bit head could not train.
        extra["llm_int8_skip_modules"] = HEADS
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=s.quant_type, bnb_4bit_use_double_quant=s.double_quant,
        bnb_4bit_compute_dtype=compute_dtype(s), **extra)}


def _checkpointing(s: QLoraSettings) -> bool:
    if s.gradient_checkpointing == "auto":
        import torch

        return torch.cuda.is_available()
    return s.gradient_checkpointing


def _same_kernels(model) -> None:
    """Keep 4-bit layers on one kernel in train and eval mode.

    On a CPU with AVX512-BF16, bitsandbytes repacks a Linear4bit's weight at its first eval-mode
    forward for a faster inference kernel. That kernel computes differently (logits moved by ~0.1 on
    the test model) and has no backward, so training after an evaluation would get wrong gradients
    through the base layers. Switching the repack off keeps eval, training and reload identical.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _prepare(model, checkpointing: bool):
    from peft import prepare_model_for_kbit_training

    # Non-reentrant checkpointing needs no requires-grad hook on the inputs. graft's trainer already
    # calls the model with use_cache=False, which checkpointing needs.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})


def _apply(dora: bool):
    def apply(model, s: QLoraSettings, ctx: ApplyContext):
        for name in ctx.head:
            if any(p.__class__.__name__ == "Params4bit" for p in model.get_submodule(name).parameters()):
                raise ConfigError(f"technique {'qdora' if dora else 'qlora'}: this model's task head '{name}' "
                                  "was loaded 4-bit and cannot train", hint="use lora for this model")
        model = wrap(_prepare(model, _checkpointing(s)), lora_config(s, use_dora=dora), ctx)
        _same_kernels(model)
        return model

    return apply


def load(base, folder, s: QLoraSettings):
    """The base comes in already 4-bit (inference loads it with `load_options`)."""
    from peft import PeftModel

    # prepared as in training (norms etc. upcast to fp32), so the logits are the trained model's own
    model = PeftModel.from_pretrained(_prepare(base, False), folder)
    _same_kernels(model)
    return model


def memory(s: QLoraSettings) -> MemoryProfile:
    return MemoryProfile(base_bits=4)


def _technique(name: str, dora: bool, description: str) -> Technique:
    return Technique(
        name=name,
        family="quantised",
        description=description,
        apply=_apply(dora),
        settings=QLoraSettings,
        # verified: causal-lm and classification end to end; seq2seq (T5) applies, saves and reloads
        kinds=frozenset({"causal-lm", "classification", "seq2seq"}),
        requires=(package("bitsandbytes", "0.48"),),
        load=load,
        load_options=load_options,
        memory=memory,
        # peft can merge into 4-bit layers only by dequantising, adding and requantising, which
        # rounds the update away in part: evaluation scores the unmerged model, as it trained.
        mergeable=False,
    )


qlora = _technique("qlora", False, "LoRA on a frozen 4-bit (NF4) base: the base needs ~1/4 the memory of bf16")
qdora = _technique("qdora", True, "DoRA (magnitude + low-rank direction) on a frozen 4-bit (NF4) base")
