"""Phrasing: statements told apart from questions and requests, and a question turned into
the statement that would answer it (which recall mixes into its query vector)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.memory.phrasing import as_statement, is_told
from mirador.memory.ranking import RankingParams
from mirador.memory.store import MemoryStore, query_vector
from tests.memory.conftest import rec


def test_told_tells_statements_from_questions_and_requests() -> None:
    told = ["I switched to a Pixel 8 last week.", "The kitchen faucet drips.",
            "Our API runs on Postgres 15.", "Whatever happens, we move in May."]
    asked = ["How do I fix a squeaky door?", "Give me a joke about kites.",
             "what's a good gift for a colleague", "Tell me something.", "Is it late?", "  "]
    assert [is_told(t) for t in told] == [True] * len(told)
    assert [is_told(t) for t in asked] == [False] * len(asked)


def test_a_question_becomes_the_statement_that_answers_it() -> None:
    assert as_statement("Which machine do I work on?") == "I work on machine."
    assert as_statement("What's my current occupation?") == "My current occupation."
    assert as_statement("Is my automobile getting too old?") == "My automobile getting too old."
    assert as_statement("Who employs me?") == "Employs me."


def test_what_is_no_question_is_left_alone() -> None:
    for text in ["I like tea.", "Give me a joke.", "What?", "", "Tell me about my car"]:
        assert as_statement(text) is None


def test_the_query_vector_mixes_in_the_statement_form(minilm: MiniLMEmbedder) -> None:
    question = "Which machine do I work on?"
    plain, told = minilm.embed([question, "I work on machine."])
    mixed = query_vector(minilm, question, RankingParams(statement_weight=0.5))
    expected = (plain + told) / np.linalg.norm(plain + told)
    np.testing.assert_allclose(mixed, expected, atol=1e-5)
    assert abs(float(np.linalg.norm(mixed)) - 1.0) < 1e-5
    off = query_vector(minilm, question, RankingParams(statement_weight=0.0))
    np.testing.assert_allclose(off, plain, atol=1e-6)
    statement = query_vector(minilm, "I like tea.", RankingParams(statement_weight=0.5))
    np.testing.assert_allclose(statement, minilm.embed(["I like tea."])[0], atol=1e-6)


def test_recall_finds_a_laptop_for_a_question_about_a_machine(store: MemoryStore) -> None:
    store.add([rec("laptop", "My ThinkPad X1 is getting slow when I edit video."),
               rec("ask", "Give me a riddle about robots."),
               rec("ml", "What's the difference between chess and machine learning?")])
    hits = store.recall("Which computer do I work on?", time.time())
    assert hits[0].record.id == "laptop"
    plain = store.recall("Which computer do I work on?", time.time(),
                         params=replace(store.params, told_weight=0.0, statement_weight=0.0))
    assert hits[0].score > plain[0].score
