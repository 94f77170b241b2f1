"""Recall ranking: meaning and words fused by rank, then age and supersession; search always
returns the top k, and only the context compiler's gate applies a threshold."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from mirador.memory.lexical import query_terms
from mirador.memory.ranking import RankingParams, decay, fuse, relevant
from mirador.memory.store import MemoryStore
from tests.memory.conftest import DAY, rec


def test_recall_ranks_by_meaning_with_scores(store: MemoryStore) -> None:
    store.add([rec("run", "I'm training for a half marathon; my long run is 14 km."),
               rec("db", "We chose Postgres for the orders service."),
               rec("kid", "My daughter starts kindergarten in September.")])
    hits = store.recall("How far should my longest run be?", time.time())
    assert hits[0].record.id == "run"
    assert hits[0].score > 0.3 and hits[0].similarity > 0.3 and 0.5 <= hits[0].decay <= 1.0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_decay_halves_the_span_above_the_floor_every_half_life() -> None:
    params = RankingParams(half_life_days=30.0, decay_floor=0.5)
    weights = decay(np.array([0.0, 30.0, 60.0, -5.0]), params)
    np.testing.assert_allclose(weights, [1.0, 0.75, 0.625, 1.0])


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


def test_fusion_rewards_agreement_and_tops_out_at_one() -> None:
    params = RankingParams(rrf_k=60.0, lexical_weight=0.5)
    fused = fuse(np.array([0.9, 0.8, 0.1]), [5.0, None, 9.0], params)
    assert fused[0] < 1.0 and fused[0] > fused[1]  # first by meaning, second by words
    assert fuse(np.array([0.9]), [1.0], params)[0] == 1.0
    assert fuse(np.array([0.9, 0.8]), [None, None], replace(params, lexical_weight=0.0))[0] \
        == 1.0


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
    weight = store.recall("Do I exercise?", later)[0].decay
    assert store.params.decay_floor < weight < 0.85
