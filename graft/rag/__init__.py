"""Retrieval-augmented answers over your documents: read, chunk, embed (MiniLM), index (FAISS), ask.

    kb = KnowledgeBase.open_or_create("docs"); kb.add(["docs/"])
    prompt = build_prompt(kb, "How do I export to GGUF?", load_template(), tokenizer)
"""

from graft.rag.answer import (RagAnswer, RagPrompt, answer, build_prompt, cited_numbers, fit_to_context,
                              prompt_from_hits)
from graft.rag.evaluate import Question, evaluate_retrieval, read_questions
from graft.rag.kb import Hit, IndexReport, KnowledgeBase, KnowledgeBaseNotFoundError, kb_root, list_knowledge_bases
from graft.rag.template import RagTemplate, load_template

__all__ = ["Hit", "IndexReport", "KnowledgeBase", "KnowledgeBaseNotFoundError", "Question", "RagAnswer", "RagPrompt",
           "RagTemplate", "answer", "build_prompt", "cited_numbers", "fit_to_context", "evaluate_retrieval", "kb_root",
           "list_knowledge_bases", "load_template", "prompt_from_hits", "read_questions"]
