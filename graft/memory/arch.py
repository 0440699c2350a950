"""A transformer's shape from its config alone: the sizes activations and parameters are made of.

Three block layouts cover most checkpoints: Llama-style decoders (pre-norm RMSNorm, gated MLP,
grouped-query attention; also Mistral, Qwen2, Gemma, Phi-3...), GPT-2-style decoders (LayerNorm,
learned positions, plain MLP) and BERT-style encoders (post-norm, token types, pooler). Parameter
counts are closed-form; for an exact total on any model, graft counts the meta-device skeleton
(graft.techniques.counting), and the estimate uses that where it has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ENCODERS = {"bert", "roberta", "xlm-roberta", "electra", "camembert", "distilbert", "deberta", "deberta-v2", "mpnet"}
GPT2_STYLE = {"gpt2", "gpt_neo", "gptj", "gpt_bigcode", "opt"}
QKV_BIAS = {"qwen2", "qwen2_moe"}  # Llama-style but with q/k/v biases


@dataclass(frozen=True)
class Arch:
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    gated_mlp: bool  # SwiGLU/GeGLU: gate and up projections, then down
    tied: bool  # the output head shares the input embedding matrix
    encoder: bool  # bidirectional encoder (BERT-like): no LM head, a pooler
    dropout: float  # hidden dropout while training (0 for most decoders)
    embed_params: int  # token (+ position, type) embeddings and their norm
    layer_params: int  # one block
    layer_linear_params: int  # weights of the block's Linear layers: what 4-bit quantisation stores as NF4
    final_params: int  # final norm / pooler
    head_params: int  # an untied LM head (0 when tied or an encoder)

    @property
    def total_params(self) -> int:
        return self.embed_params + self.layers * self.layer_params + self.final_params + self.head_params

    @property
    def quantizable_params(self) -> int:
        """Linear weights inside the blocks: bitsandbytes quantises these; embeddings, norms and the LM head stay."""
        return self.layers * self.layer_linear_params

    def matrices(self) -> list[tuple[int, ...]]:
        """Shapes of every parameter tensor (for optimizers whose state depends on shape, like Adafactor)."""
        d, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        block = [(q, d), (kv, d), (kv, d), (d, q)]
        block += [(i, d), (i, d), (d, i)] if self.gated_mlp else [(i, d), (d, i)]
        rest = self.layer_params - sum(a * b for a, b in block)  # norms and biases: vectors
        shapes = [(self.vocab, d)] + block * self.layers + [(rest,)] * self.layers
        if self.head_params:
            shapes.append((self.vocab, d))
        if self.final_params:
            shapes.append((self.final_params,))
        extra = self.embed_params - self.vocab * d  # positions, token types
        if extra > 0:
            shapes.append((extra // d, d) if extra % d == 0 else (extra,))
        return shapes


def _get(cfg: Any, *names: str, default=None):
    for name in names:
        value = cfg.get(name) if isinstance(cfg, dict) else getattr(cfg, name, None)
        if value is not None:
            return value
    return default


def arch_of(config: Any) -> Arch:
    """Arch from a transformers PretrainedConfig or its dict (config.json)."""
    if not isinstance(config, dict) and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    if isinstance(config, dict) and isinstance(config.get("text_config"), dict):
        config = config["text_config"]
    model_type = str(_get(config, "model_type", default="llama"))
    d = int(_get(config, "hidden_size", "n_embd", "d_model", "dim"))
    layers = int(_get(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers"))
    heads = int(_get(config, "num_attention_heads", "n_head", "num_heads"))
    kv = int(_get(config, "num_key_value_heads", "num_kv_heads", default=heads))
    head_dim = int(_get(config, "head_dim", default=d // heads))
    vocab = int(_get(config, "vocab_size"))
    encoder = model_type in ENCODERS
    gpt2 = model_type in GPT2_STYLE
    inter = int(_get(config, "intermediate_size", "n_inner", "ffn_dim", "hidden_dim", default=4 * d))
    # transformers' own default is tied; Llama-style configs usually say so explicitly either way
    tied = bool(_get(config, "tie_word_embeddings", default=True))
    dropout = float(_get(config, "hidden_dropout_prob", "resid_pdrop", "dropout", default=0.0) or 0.0)
    q, kvd = heads * head_dim, kv * head_dim
    if encoder or gpt2:
        # biased projections, LayerNorm (weight + bias) after attention and after the MLP
        linear = 2 * d * q + 2 * d * kvd + 2 * d * inter
        bias = q + 2 * kvd + d + inter + d
        layer = linear + bias + 4 * d
        positions = int(_get(config, "max_position_embeddings", "n_positions", default=0))
        types = int(_get(config, "type_vocab_size", default=0)) if encoder else 0
        embed = (vocab + positions + types) * d + (2 * d if encoder else 0)
        final = d * d + d if encoder else 2 * d  # BERT's pooler; GPT-2's final LayerNorm
        head = 0 if (encoder or tied) else vocab * d
        return Arch(model_type, d, layers, heads, kv, head_dim, inter, vocab, False, tied, encoder, dropout,
                    embed, layer, linear, final, head)
    linear = d * q + 2 * d * kvd + q * d + 3 * d * inter
    bias = 0
    if _get(config, "attention_bias", default=model_type in QKV_BIAS):
        bias += q + 2 * kvd + (0 if model_type in QKV_BIAS else d)
    if _get(config, "mlp_bias", default=False):
        bias += 2 * inter + d
    layer = linear + bias + 2 * d  # two RMSNorm weights
    head = 0 if tied else vocab * d
    return Arch(model_type, d, layers, heads, kv, head_dim, inter, vocab, True, tied, False, dropout,
                vocab * d, layer, linear, d, head)
