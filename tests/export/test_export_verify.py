"""The agreement check every export runs (graft.export.verify), on hand-made logits and the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graft.evaluate.generate import render_prompt
from graft.export import verify


def _fixed(table: dict[tuple[int, ...], np.ndarray]):
    return lambda ids: table[tuple(ids)]


def test_agreement_counts_only_the_answer_positions_and_the_greedy_prefix():
    vocab = 5
    seq = verify.Sequence(ids=[0, 1, 2, 3, 4, 0], prompt_len=2)  # answer: 2 3 4 0, predicted by rows 1..4
    ref = np.zeros((6, vocab), dtype=np.float32)
    for row, token in enumerate(seq.ids[1:]):
        ref[row, token] = 1.0
    cand = ref.copy()
    cand[0] = 9.0  # the prompt row: not counted
    cand[3, 1] = 2.0  # the third answer position now predicts 1
    found = verify.agreement(_fixed({tuple(seq.ids): ref}), _fixed({tuple(seq.ids): cand}), [seq])
    assert found["prompts"] == 1 and found["positions"] == 4
    assert found["top1_match"] == 0.75
    assert found["greedy_prefix_match"] == 0.5  # two of four answer tokens before the first miss
    assert found["max_abs_logit_diff"] == 2.0  # the prompt row's 9.0 is outside the answer
    assert found["mean_abs_logit_diff"] == pytest.approx(2.0 / (4 * vocab))


def test_identical_logits_agree_fully():
    seqs = [verify.Sequence(ids=[1, 2, 3], prompt_len=1), verify.Sequence(ids=[3, 2], prompt_len=1)]
    rng = np.random.default_rng(0)
    table = {tuple(s.ids): rng.standard_normal((len(s.ids), 4)).astype(np.float32) for s in seqs}
    found = verify.agreement(_fixed(table), _fixed(table), seqs)
    assert (found["positions"], found["top1_match"], found["max_abs_logit_diff"]) == (3, 1.0, 0.0)


def test_mismatched_vocabularies_are_an_error():
    seq = verify.Sequence(ids=[1, 2], prompt_len=1)
    with pytest.raises(verify.ReloadError, match="shape"):
        verify.agreement(lambda ids: np.zeros((2, 4)), lambda ids: np.zeros((2, 5)), [seq])


def test_reference_sequences_are_chat_prompts_with_the_models_greedy_answer(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert len(set(verify.DEFAULT_PROMPTS)) >= 12
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    seqs = verify.reference_sequences(model, tokenizer, verify.DEFAULT_PROMPTS[:3], new_tokens=5)
    for prompt, seq in zip(verify.DEFAULT_PROMPTS, seqs):
        text = render_prompt(tokenizer, [{"role": "user", "content": prompt}])
        assert text.startswith("<|im_start|>user\n" + prompt) and text.endswith("<|im_start|>assistant\n")
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert seq.ids[: seq.prompt_len] == prompt_ids and len(seq.ids) == len(prompt_ids) + 5
        logits = verify.hf_logits(model)(seq.ids)
        assert logits.shape == (len(seq.ids), len(tokenizer)) and logits.dtype == np.float32
        assert logits[seq.prompt_len - 1 : -1].argmax(-1).tolist() == seq.ids[seq.prompt_len :]  # greedy
