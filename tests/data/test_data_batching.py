"""Padding-free micro-batches: flatten() layout, group() order and packing, no cross-example attention."""

from __future__ import annotations

import pytest
import torch

from graft.data.batching import flatten, group
from graft.data.example import Example
from graft.data.tokenize import IGNORE, Tokenized, tokenize_examples
from graft.train.loss import loss_sum


def test_flatten_layout_and_shifted_targets():
    a = Tokenized([10, 11, 12, 13], [IGNORE, IGNORE, 12, 13])
    b = Tokenized([20, 21, 22], [20, IGNORE, 22])  # label at position 0 can never be a target
    batch = flatten([a, b])
    assert batch.input_ids.tolist() == [[10, 11, 12, 13, 20, 21, 22]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    # position j predicts token j+1 of the same example; nothing predicts across the boundary
    assert batch.target_positions.tolist() == [1, 2, 5]
    assert batch.targets.tolist() == [12, 13, 22]
    assert (batch.tokens, batch.examples) == (7, 2)
    assert batch.targets.tolist() == [batch.input_ids[0, p + 1].item() for p in batch.target_positions.tolist()]


def test_flatten_targets_match_tokenized_labels(tiny_tokenizer):
    rows = [
        Example(messages=[{"role": "user", "content": f"Colour of the {t}?"},
                          {"role": "assistant", "content": f"The {t} is {c}."}], source="m", row=i)
        for i, (t, c) in enumerate([("sky", "blue"), ("coal", "black"), ("plum", "purple")], 1)
    ]
    items = tokenize_examples(rows, tiny_tokenizer, max_length=64).items
    batch = flatten(items)
    expected_targets, expected_pos, expected_posids, offset = [], [], [], 0
    for it in items:
        for j in range(1, len(it.labels)):
            if it.labels[j] != IGNORE:
                expected_targets.append(it.labels[j])
                expected_pos.append(offset + j - 1)
        expected_posids += list(range(len(it.input_ids)))
        offset += len(it.input_ids)
    assert batch.targets.tolist() == expected_targets
    assert batch.target_positions.tolist() == expected_pos
    assert batch.position_ids[0].tolist() == expected_posids
    assert len(batch.targets) == sum(it.targets for it in items)
    assert batch.tokens == offset == batch.input_ids.shape[1]


def test_group_is_deterministic_per_seed_and_epoch():
    n, lengths = 37, [5] * 37
    g = lambda seed, epoch: group(n, lengths, 4, 64, False, seed, epoch)  # noqa: E731
    assert g(3, 0) == g(3, 0)
    assert g(3, 1) == g(3, 1)
    assert g(3, 0) != g(3, 1)
    assert g(3, 0) != g(4, 0)
    for epoch in range(3):
        batches = g(3, epoch)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(n)), "every index exactly once per epoch"
        assert [len(b) for b in batches] == [4] * 9 + [1]


def test_group_packing_respects_the_token_budget():
    import random

    rng = random.Random(1)
    lengths = [rng.randint(3, 64) for _ in range(100)]
    batch_size, max_length = 3, 64
    budget = batch_size * max_length
    batches = group(len(lengths), lengths, batch_size, max_length, True, seed=7, epoch=2)
    assert batches == group(len(lengths), lengths, batch_size, max_length, True, seed=7, epoch=2)
    assert sorted(i for b in batches for i in b) == list(range(100))
    used = [sum(lengths[i] for i in b) for b in batches]
    assert max(used) <= budget
    # greedy packing: a batch is closed only because the next example did not fit
    for b, nxt in zip(batches, batches[1:]):
        assert sum(lengths[i] for i in b) + lengths[nxt[0]] > budget
    assert len(batches) < len(lengths) / batch_size  # packing puts more than batch_size per batch
    # the order inside an epoch is the same shuffle as without packing
    unpacked = group(len(lengths), lengths, batch_size, max_length, False, seed=7, epoch=2)
    assert [i for b in batches for i in b] == [i for b in unpacked for i in b]


def test_packing_keeps_an_oversized_example_alone():
    lengths = [10, 500, 10]
    batches = group(3, lengths, 2, 64, True, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == [0, 1, 2]
    assert [1] in batches


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model.eval()


def test_padding_free_batch_equals_separate_examples(tiny_model, tiny_tokenizer):
    rows = [
        Example(messages=[{"role": "user", "content": "What colour is the apple?"},
                          {"role": "assistant", "content": "The apple is red."}], source="m", row=1),
        Example(messages=[{"role": "system", "content": "You are a helpful model."},
                          {"role": "user", "content": "Say the colour of the sea."},
                          {"role": "assistant", "content": "The sea is blue, like the sky."}], source="m", row=2),
    ]
    a, b = tokenize_examples(rows, tiny_tokenizer, max_length=64, train_on="all").items
    with torch.no_grad():
        sep = [loss_sum(tiny_model, flatten([x])).item() for x in (a, b)]
        together = loss_sum(tiny_model, flatten([a, b])).item()
        swapped = loss_sum(tiny_model, flatten([b, a])).item()
        # control: the same row with positions running on, so the second example sees the first
        leaky = flatten([a, b])
        leaky.position_ids = torch.arange(leaky.tokens).unsqueeze(0)
        leaked = loss_sum(tiny_model, leaky).item()
    assert sep[0] > 1.0 and sep[1] > 1.0
    assert together == pytest.approx(sep[0] + sep[1], abs=1e-4)
    assert swapped == pytest.approx(sep[0] + sep[1], abs=1e-4)
    assert abs(leaked - (sep[0] + sep[1])) > 1e-2, "the control must differ, or the test proves nothing"


def test_loss_sum_matches_full_logits_cross_entropy(tiny_model, tiny_tokenizer):
    """logits_to_keep with an index tensor gives the same loss as computing every logit."""
    rows = [Example(messages=[{"role": "user", "content": "Colour of the milk?"},
                              {"role": "assistant", "content": "The milk is white."}], source="m", row=1)]
    (item,) = tokenize_examples(rows, tiny_tokenizer, max_length=64).items
    batch = flatten([item])
    with torch.no_grad():
        logits = tiny_model(input_ids=batch.input_ids).logits[0]
        labels = torch.tensor(item.labels)
        ref = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE, reduction="sum")
        got = loss_sum(tiny_model, batch)
    assert len(batch.targets) == item.targets > 0
    assert got.item() == pytest.approx(ref.item(), abs=1e-4)

