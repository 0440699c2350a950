"""Prompts from retrieved chunks, the template file, citations."""

from __future__ import annotations

import pytest

from graft.errors import ConfigError
from graft.rag import KnowledgeBase, answer, build_prompt, cited_numbers, load_template
from graft.rag.template import DEFAULT


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i, text in enumerate(["Volcanoes erupt molten lava from deep inside the earth.",
                              "Glaciers carve wide valleys as they slowly move downhill.",
                              "Rivers deposit silt where they slow down near the sea.",
                              "Deserts receive very little rain in a year.",
                              "Coral reefs grow only in warm, shallow and clear water."]):
        (folder / f"doc{i}.txt").write_text(text)
    kb = KnowledgeBase.create("geo", root=tmp_path_factory.mktemp("kbs"), chunk_size=200, overlap=0)
    kb.add([folder])
    return kb


class Words:
    """A stand-in tokenizer: one token per word."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_prompt_numbers_the_sources_best_first(kb):
    prompt = build_prompt(kb, "Where does lava come from?", load_template(), Words(), k=3)
    assert [h.n for h in prompt.sources] == [1, 2, 3]
    assert prompt.sources[0].chunk.source.endswith("doc0.txt")
    user = prompt.messages[-1]["content"]
    assert prompt.messages[0]["role"] == "system" and "[1]" in prompt.messages[0]["content"]
    assert user.index("[1] ") < user.index("[2] ") < user.index("[3] ") < user.index("Question: Where does lava")
    assert prompt.generation["max_new_tokens"] == 256 and prompt.generation["temperature"] == 0.0


def test_the_context_budget_leaves_out_the_lowest_ranked(kb, tmp_path):
    tight = tmp_path / "tight.yaml"
    tight.write_text(DEFAULT.read_text().replace("max_context_tokens: 1500", "max_context_tokens: 40"))
    prompt = build_prompt(kb, "Where does lava come from?", load_template(tight), Words(), k=5)
    assert 1 <= len(prompt.sources) < 5 and prompt.left_out == 5 - len(prompt.sources)
    assert prompt.sources[0].chunk.source.endswith("doc0.txt")


def test_empty_question_is_refused(kb):
    with pytest.raises(ConfigError, match="empty"):
        build_prompt(kb, "   ", load_template(), Words())


def test_cited_numbers():
    assert cited_numbers("Lava [2], and also [1, 3]; see [2] and [7] and [0].", 3) == [2, 1, 3]
    assert cited_numbers("no citations here", 3) == []


def test_answer_collects_the_reply_and_marks_cited_sources(kb):
    prompt = build_prompt(kb, "What do glaciers do?", load_template(), Words(), k=3)
    seen = []

    def generate(messages, **options):
        assert messages == prompt.messages and options == prompt.generation
        yield from ["Glaciers carve ", "valleys [1]."]

    result = answer(prompt, generate, seen.append)
    assert result.text == "Glaciers carve valleys [1]." and seen == ["Glaciers carve ", "valleys [1]."]
    assert result.cited == [1]
    flags = [s["cited"] for s in result.to_dict()["sources"]]
    assert flags == [True, False, False]


@pytest.mark.parametrize("change,message", [
    (("{question}", "{query}"), "prompt: unknown placeholder {query}"),
    (("Question: {question}", "Question:"), "prompt must contain {question}"),
    (("[{n}] {source}{title}", "[{n}] {origin}"), "source: unknown placeholder {origin}"),
    (("max_tokens: 256", "max_tokens: 0"), "generation.max_tokens"),
    (("k: 10 ", "k: ten "), "k:"),
    (("top_p: 1.0", "top_p: 1.0\n  beam: 3"), "generation.beam"),
])
def test_template_mistakes_name_the_field(tmp_path, change, message):
    path = tmp_path / "t.yaml"
    path.write_text(DEFAULT.read_text().replace(*change))
    with pytest.raises(ConfigError) as err:
        load_template(path)
    assert message in str(err.value) and "t.yaml" in str(err.value)


def test_template_that_is_not_yaml_or_missing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("k: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_template(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_template(tmp_path / "absent.yaml")


def test_the_source_budget_shrinks_to_a_small_models_context():
    from types import SimpleNamespace

    from graft.rag import fit_to_context

    template = load_template()
    small = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=300))
    fitted = fit_to_context(template, small, Words(), "Where does lava come from?", max_new_tokens=100)
    assert 16 <= fitted.max_context_tokens < 300 - 100
    large = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192))
    assert fit_to_context(template, large, Words(), "q", 256).max_context_tokens == template.max_context_tokens
