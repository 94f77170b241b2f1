"""Recall ranking: meaning first, a bounded word bonus, age and supersession only between
memories that answer alike; search always returns the top k, and only the context
compiler's gate applies a threshold."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from mirador.memory.lexical import query_terms
from mirador.memory.ranking import (
    Candidate,
    RankingParams,
    freshness,
    lexical_bonus,
    rank,
    relevant,
)
from mirador.memory.records import MemoryRecord
from mirador.memory.store import MemoryStore
from tests.memory.conftest import DAY, rec


def test_recall_ranks_by_meaning_with_scores(store: MemoryStore) -> None:
    store.add([rec("run", "I'm training for a half marathon; my long run is 14 km."),
               rec("db", "We chose Postgres for the orders service."),
               rec("kid", "My daughter starts kindergarten in September.")])
    hits = store.recall("How far should my longest run be?", time.time())
    assert hits[0].record.id == "run"
    assert hits[0].score > 0.3 and hits[0].similarity > 0.3 and 0.9 <= hits[0].decay <= 1.0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_freshness_halves_every_half_life() -> None:
    params = RankingParams(half_life_days=30.0)
    weights = freshness(np.array([0.0, 30.0, 60.0, -5.0]), params)
    np.testing.assert_allclose(weights, [1.0, 0.5, 0.25, 1.0])


def _candidate(memory_id: str, similarity: float, days_ago: float, vector: list[float],
               lexical: float | None = None) -> Candidate:
    record = MemoryRecord(id=memory_id, namespace="default", query=memory_id, response="",
                          timestamp=time.time() - days_ago * DAY)
    unit = np.asarray(vector, dtype=np.float32) / np.linalg.norm(vector)
    return Candidate(record=record, similarity=similarity, lexical=lexical,
                     doc_vector=unit, doc_similarity=similarity)


def test_age_never_reorders_memories_that_answer_differently() -> None:
    params = RankingParams(age_weight=0.02)
    old_close = _candidate("old", 0.50, 900, [1, 0, 0])
    new_far = _candidate("new", 0.46, 0, [0, 1, 0])  # another subject, a little less close
    assert [h.record.id for h in rank([new_far, old_close], time.time(), params)] == \
        ["old", "new"]


def test_a_newer_memory_supersedes_only_on_the_same_subject_and_question() -> None:
    params = RankingParams(supersede_from=0.4, supersede_margin=0.15)
    old = _candidate("old", 0.50, 300, [1, 0.1, 0])
    new = _candidate("new", 0.40, 5, [1, 0, 0])  # same subject, nearly as relevant
    hits = rank([old, new], time.time(), params)
    assert [h.record.id for h in hits] == ["new", "old"] and hits[1].superseded > 0.0
    weak = _candidate("new", 0.20, 5, [1, 0, 0])  # same subject, not about the question
    assert rank([old, weak], time.time(), params)[0].record.id == "old"
    other = _candidate("new", 0.45, 5, [0, 1, 0])  # about the question, another subject
    assert rank([old, other], time.time(), params)[0].record.id == "old"


def test_now_decides_which_of_two_equal_memories_is_fresher(store: MemoryStore) -> None:
    now = time.time()
    store.add([rec("a", "My favourite tea is jasmine.", days_ago=400),
               rec("b", "My favourite tea is jasmine!", days_ago=10)])
    hits = store.recall("What tea do I like?", now)
    assert [h.record.id for h in hits[:2]] == ["b", "a"]
    assert hits[0].decay > hits[1].decay


def test_a_newer_memory_on_the_same_subject_supersedes_the_older(store: MemoryStore) -> None:
    store.add([rec("old", "Our team standup is at 9am every day.", "Keep it short.", days_ago=60),
               rec("new", "Our team standup moved to 10am every day.", "Noted.", days_ago=2),
               rec("other", "I water the plants on Sundays.", days_ago=1)])
    hits = store.recall("When is our standup?", time.time())
    assert hits[0].record.id == "new"
    old = next(h for h in hits if h.record.id == "old")
    assert old.superseded > 0.0 and hits[0].superseded == 0.0


def test_an_exact_code_the_model_blurs_is_found_by_words(store: MemoryStore) -> None:
    store.add([rec("t", "Ticket OPS-4312 about the login timeout blocks the release."),
               rec("u", "Ticket WEB-118 about the signup page is done.")]
              + [rec(f"f{i}", f"Ticket review number {i} went fine.") for i in range(30)])
    hits = store.recall("What is the status of OPS-4312?", time.time())
    assert hits[0].record.id == "t" and hits[0].lexical > 0
    assert query_terms("What is the status of OPS-4312?") == ["status", "ops", "4312"]


def test_the_word_bonus_is_bounded_and_grows_with_bm25() -> None:
    params = RankingParams(lexical_weight=0.05, lexical_saturation=5.0)
    bonus = lexical_bonus([None, 1.0, 5.0, 500.0], params)
    assert bonus[0] == 0.0 and bonus[1] < bonus[2] < bonus[3] < 0.05
    assert bonus[2] == 0.025  # the saturation score earns half
    close = _candidate("close", 0.60, 1, [1, 0, 0])
    named = _candidate("named", 0.58, 1, [0, 1, 0], lexical=20.0)
    far = _candidate("far", 0.40, 1, [0, 0, 1], lexical=500.0)
    hits = rank([close, named, far], time.time(), params)
    assert [h.record.id for h in hits] == ["named", "close", "far"]


def test_search_always_returns_the_top_k_and_only_the_gate_filters(store: MemoryStore) -> None:
    store.add([rec("x", "I'm learning Portuguese before moving to Lisbon."),
               rec("y", "The kitchen faucet drips.")])
    now = time.time()
    strict = replace(store.params, inject_similarity=0.99)
    hits = store.recall("What is my car's tyre pressure?", now, params=strict)
    assert {h.record.id for h in hits} == {"x", "y"}  # nothing relevant, still ranked
    assert relevant(hits, strict) == []
    close = store.recall("Am I learning Portuguese for the move to Lisbon?", now)
    assert [h.record.id for h in relevant(close, store.params)] == ["x"]


def test_limit_and_empty_namespace(store: MemoryStore) -> None:
    store.add([rec(f"m{i}", f"Fact number {i} about my garden roses.") for i in range(8)])
    assert len(store.recall("my roses", time.time(), params=replace(store.params, limit=3))) == 3
    assert store.recall("my roses", time.time(), "no-such-namespace") == []


def test_decay_is_scored_against_the_given_now(store: MemoryStore) -> None:
    store.add([rec("t", "I jog every morning before work.", days_ago=0)])
    later = time.time() + 365 * DAY
    hit = store.recall("Do I exercise?", later)[0]
    assert hit.decay < 0.1  # four half-lives on
    told = hit.similarity + store.params.told_weight  # a statement, not a question
    assert told - store.params.age_weight <= hit.score < told


def test_age_and_updates_reorder_the_top_k_and_an_update_from_below_joins() -> None:
    params = RankingParams(limit=3, age_weight=0.04, supersede_from=0.4, supersede_margin=0.1,
                           told_weight=0.0)
    answer = _candidate("answer", 0.60, 2000, [0, 0, 1])  # old, but the clear answer
    fact = _candidate("fact", 0.50, 400, [1, 0, 0])
    other = _candidate("other", 0.40, 10, [0, 1, 0])
    update = _candidate("update", 0.35, 3, [1, 0.2, 0])  # updates `fact`, ranked fourth
    hits = rank([answer, fact, other, update], time.time(), params)
    assert [h.record.id for h in hits] == ["answer", "update", "fact"]  # `other` gave way
    below = rank([answer, fact, other, update], time.time(), replace(params, limit=2))
    assert [h.record.id for h in below] == ["answer", "fact"]  # nothing below `fact` to give
    off = rank([answer, fact, other, update], time.time(), replace(params, update_depth=0))
    assert [h.record.id for h in off] == ["answer", "fact", "other"]


def test_only_a_statement_updates_and_only_its_nearest_later_one() -> None:
    params = RankingParams(limit=3, supersede_from=0.4, told_weight=0.0)
    fact = _candidate("I use an iPhone 12.", 0.50, 400, [1, 0, 0])
    asked = _candidate("How do I back up a phone?", 0.30, 3, [1, 0.1, 0])  # a question
    far = _candidate("I switched to a Pixel 8.", 0.20, 5, [1, 0.5, 0])
    near = _candidate("I switched to a Pixel 9.", 0.10, 1, [1, 0.3, 0])
    other = _candidate("I like tea.", 0.45, 0, [0, 0, 1])
    third = _candidate("I like jazz.", 0.40, 0, [0, 1, 1])
    hits = rank([fact, asked, far, near, other, third], time.time(), params)
    assert [h.record.id for h in hits] == ["I switched to a Pixel 9.", "I use an iPhone 12.",
                                           "I like tea."]  # "I like jazz." gave way


def test_what_the_person_told_outranks_what_they_asked() -> None:
    params = RankingParams(told_weight=0.15)
    asked = _candidate("Which laptop should I buy?", 0.50, 0, [1, 0, 0])
    told = _candidate("My ThinkPad X1 is getting slow.", 0.40, 0, [0, 1, 0])
    hits = rank([asked, told], time.time(), params)
    assert [h.record.id for h in hits] == [told.record.id, asked.record.id]
    assert [h.similarity for h in hits] == [0.40, 0.50]  # the gate sees meaning alone
    assert [h.record.id for h in rank([asked, told], time.time(),
                                      replace(params, told_weight=0.0))][0] == asked.record.id

