"""Sentence embeddings with the bundled MiniLM: meaning, unit norm, batching."""

from __future__ import annotations

import numpy as np
import pytest

from graft.models.embed import Embedder
from testkit import Recorder

TEXTS = ["What colour is the apple?", "Tell me the colour of an apple.", "How do I sort a list in Python?",
         "Which colour does a banana have?", "The stock market fell sharply on Monday.", "To be, or not to be"]


@pytest.fixture(scope="module")
def embedder():
    return Embedder("minilm-l6")


def test_same_meaning_is_closer_than_unrelated(embedder):
    apple, paraphrase, code = embedder.encode(TEXTS[:3])
    assert apple @ paraphrase > 0.8
    assert apple @ paraphrase > apple @ code + 0.5


def test_unit_norm_and_shape(embedder):
    vectors = embedder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dim) == (6, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batching_and_order_do_not_change_the_result(embedder):
    whole = embedder.encode(TEXTS)
    embedder.batch_size = 2
    try:
        batched = embedder.encode(TEXTS)
    finally:
        embedder.batch_size = 64
    np.testing.assert_allclose(batched, whole, atol=1e-5)
    one = embedder.encode([TEXTS[4]])[0]
    np.testing.assert_allclose(one, whole[4], atol=1e-5)


def test_empty_input_and_progress(embedder):
    assert embedder.encode([]).shape == (0, embedder.dim)
    assert embedder.count_tokens([]).shape == (0,)

    rec = Recorder()
    embedder.batch_size = 4
    try:
        embedder.encode(TEXTS, progress=rec)
    finally:
        embedder.batch_size = 64
    assert rec.events == [("start", "embed", 6), ("advance", "embed", 4, {}), ("advance", "embed", 2, {}), ("finish", "embed")]


def test_count_tokens_is_untruncated(embedder):
    long = "word " * 600
    assert embedder.count_tokens(["hello world", long]).tolist() == [2, 600]
