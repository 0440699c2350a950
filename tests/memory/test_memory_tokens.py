"""Real micro-batch sizes from tokenized items, and meta-device counts of a model folder."""

from __future__ import annotations

from graft.data.tokenize import IGNORE, Tokenized
from graft.memory.run import meta_counts
from graft.memory.tokens import largest_micro_batch


def _item(n: int, targets: int) -> Tokenized:
    return Tokenized(input_ids=list(range(n)), labels=[IGNORE] * (n - targets) + list(range(targets)))


def test_packed_rows_count_real_tokens_padded_rows_the_width():
    items = [_item(10, 4), _item(30, 10), _item(20, 5), _item(40, 20)]
    packed = largest_micro_batch(items, batch_size=2, max_length=64, packing=False, packed_rows=True, seed=0)
    padded = largest_micro_batch(items, batch_size=2, max_length=64, packing=False, packed_rows=False, seed=0)
    assert packed.data_tokens == padded.data_tokens == 100
    assert packed.tokens <= 70 and padded.tokens == 2 * 40  # the longest example's row sets the width
    assert packed.targets <= 30
    whole = largest_micro_batch(items, batch_size=4, max_length=64, packing=False, packed_rows=True)
    assert (whole.tokens, whole.targets) == (100, 39)  # a target needs a previous position: the first label is none


def test_meta_counts_of_the_tiny_model(tiny_model_dir):
    from transformers import AutoConfig

    from graft.memory.arch import arch_of

    c = meta_counts(tiny_model_dir, "lora", {"r": 4})
    arch = arch_of(AutoConfig.from_pretrained(tiny_model_dir))
    assert c["total"] - c["trainable"] == arch.total_params
    assert c["quantizable"] == arch.quantizable_params  # every Linear in the blocks; not the tied head
    # LoRA r=4 on all seven linears: A is 4 x in, B is out x 4
    per_layer = sum(4 * (i + o) for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)])
    assert c["trainable"] == 2 * per_layer == sum(a * b for a, b in c["trainable_shapes"])
