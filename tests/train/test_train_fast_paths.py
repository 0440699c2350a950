"""The speed paths change no numbers: packed attention and the fused output layer + loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from testkit import llama

from graft.data.batching import flatten
from graft.data.tokenize import IGNORE, Tokenized
from graft.train import head_loss
from graft.train.attention import NAME, use_packed_attention
from graft.train.loss import forward_logits, loss_sum


def _items() -> list[Tokenized]:
    g = torch.Generator().manual_seed(3)
    out = []
    for n in (7, 11, 5):
        ids = torch.randint(3, 97, (n,), generator=g).tolist()
        out.append(Tokenized(ids, [IGNORE] * 3 + ids[3:]))
    return out


def test_flatten_records_each_examples_span():
    b = flatten(_items())
    assert b.cu_seq_lens.tolist() == [0, 7, 18, 23]
    assert b.position_ids[0, 7].item() == 0 and b.position_ids[0, 18].item() == 0


def test_packed_attention_equals_one_example_at_a_time():
    model = llama()
    items = _items()
    alone = [forward_logits(model, flatten([it])) for it in items]
    assert use_packed_attention(model)
    assert model.config._attn_implementation == NAME
    packed = forward_logits(model, flatten(items))
    torch.testing.assert_close(packed, torch.cat(alone), atol=2e-5, rtol=1e-5)


def test_packed_attention_without_spans_is_plain_sdpa():
    """Padded batches and generation (no cu_seq_lens) go through transformers' own SDPA and mask."""
    model = llama()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    before = model(input_ids=ids, attention_mask=mask).logits
    use_packed_attention(model)
    after = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(after, before)


def test_fused_head_loss_matches_logits_and_cross_entropy(monkeypatch):
    monkeypatch.setattr(head_loss, "CHUNK_ELEMENTS", 97 * 4)  # several chunks even at this size
    torch.manual_seed(0)
    hidden = torch.randn(13, 16, requires_grad=True)
    weight = torch.randn(97, 16, requires_grad=True)
    targets = torch.randint(0, 97, (13,))
    ref = F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum")
    ref_grads = torch.autograd.grad(3 * ref, [hidden, weight])
    fused = head_loss.head_cross_entropy(hidden, weight, targets)
    grads = torch.autograd.grad(3 * fused, [hidden, weight])
    torch.testing.assert_close(fused, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_training_loss_takes_the_fused_path_and_agrees():
    model = llama()
    batch = flatten(_items())
    assert head_loss.plain_head(model) is not None  # a llama: lm_head(decoder(...)) and nothing else
    want = F.cross_entropy(forward_logits(model, batch), batch.targets, reduction="sum")
    got = loss_sum(model, batch)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    got.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_heads_that_are_not_plain_take_the_ordinary_path():
    model = llama()
    model.config.final_logit_softcapping = 30.0
    assert head_loss.plain_head(model) is None
    model = llama()
    model.lm_head.register_forward_hook(lambda *a: None)
    assert head_loss.plain_head(model) is None


def test_fused_head_loss_forms_no_gradients_under_no_grad(monkeypatch):
    """Evaluation and MeZO run under no_grad: a trainable head must not cost a vocab x hidden gradient."""
    calls = []
    real = head_loss._chunked
    monkeypatch.setattr(head_loss, "_chunked", lambda *a: calls.append(a[3:]) or real(*a))
    hidden, weight = torch.randn(5, 16), torch.randn(97, 16, requires_grad=True)
    targets = torch.randint(0, 97, (5,))
    with torch.no_grad():
        loss = head_loss.head_cross_entropy(hidden, weight, targets)
    assert calls == [(False, False)]
    torch.testing.assert_close(loss, F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum"))
