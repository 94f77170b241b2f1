"""The hooks' lifecycle: sinks are told before `Done`, each apart from the others' failures,
and every hook is closed through the orchestrator's `aclose`. Real Chroma, real SQLite;
a scripted backend, since what is tested is the bookkeeping around the answer."""

from __future__ import annotations

import logging
from contextlib import aclosing

import pytest

from mirador.backends.scripted import Script, ScriptedBackend
from mirador.compose import create_orchestrator
from mirador.errors import LearningStoreError
from mirador.learning import Learner
from mirador.memory import Memory
from mirador.orchestration.events import Done
from mirador.orchestration.hooks import AnswerRecord
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings

ONE = [ModelStage("quick_response", "quick", 0.6, timeout=30)]


async def until_done(orchestrator: Orchestrator, query: str) -> Done:
    """Read the events up to `Done` and stop there, as a hurried caller would."""
    async with aclosing(orchestrator.process(query, stages=ONE)) as events:
        async for event in events:
            if isinstance(event, Done):
                return event
    raise AssertionError("no Done event")


class Failing:
    async def answer_finished(self, record: AnswerRecord) -> None:
        raise RuntimeError("a sink with a bug")


class Keeping:
    def __init__(self) -> None:
        self.records: list[AnswerRecord] = []

    async def answer_finished(self, record: AnswerRecord) -> None:
        self.records.append(record)


async def test_a_caller_that_stops_at_done_still_has_the_exchange_remembered_and_logged(
        settings: Settings) -> None:
    orchestrator = create_orchestrator(settings)
    backend = ScriptedBackend()
    orchestrator.manager.use_backend("llamacpp", backend)
    backend.enqueue(Script(pieces=["Keep", " a", " regular", " bedtime."]))
    try:
        done = await until_done(orchestrator, "How can I sleep better?")
        await orchestrator.recorded(done.answer_id)
        learner, memory = orchestrator.chooser, orchestrator.context
        assert isinstance(learner, Learner) and isinstance(memory, Memory)
        assert learner.store.answer(done.answer_id).query == "How can I sleep better?"
        memory.flush()
        [kept] = memory.store().records()
        assert kept.id == done.answer_id and kept.response == "Keep a regular bedtime."
    finally:
        await orchestrator.aclose()


async def test_one_failing_sink_does_not_stop_another_nor_cost_the_answer(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    keeping = Keeping()
    backend = ScriptedBackend()
    async with Orchestrator(settings, sinks=[Failing(), keeping]) as orchestrator:
        orchestrator.manager.use_backend("llamacpp", backend)
        backend.enqueue(Script(pieces=["Fine."]))
        with caplog.at_level(logging.ERROR, logger="mirador"):
            done = await orchestrator.answer("How are you?", stages=ONE)
    assert done.status == "ok" and done.answer == "Fine."
    assert [r.done.answer_id for r in keeping.records] == [done.answer_id]
    [logged] = [r for r in caplog.records if "was not given to Failing" in r.getMessage()]
    assert "RuntimeError: a sink with a bug" in logged.getMessage()
    assert logged.exc_info is None  # the traceback only under MIRADOR_DEBUG=1


async def test_under_mirador_debug_a_failing_sink_logs_its_traceback(
        settings: Settings, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRADOR_DEBUG", "1")
    backend = ScriptedBackend()
    async with Orchestrator(settings, sinks=[Failing()]) as orchestrator:
        orchestrator.manager.use_backend("llamacpp", backend)
        backend.enqueue(Script(pieces=["Fine."]))
        with caplog.at_level(logging.ERROR, logger="mirador"):
            await orchestrator.answer("How are you?", stages=ONE)
    [logged] = [r for r in caplog.records if "was not given to Failing" in r.getMessage()]
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RuntimeError)


async def test_closing_the_orchestrator_waits_for_the_sinks_and_closes_the_learner(
        settings: Settings) -> None:
    learner = Learner.for_ratings(settings)
    keeping = Keeping()
    backend = ScriptedBackend()
    orchestrator = Orchestrator(settings, sinks=[learner, keeping], chooser=learner)
    orchestrator.manager.use_backend("llamacpp", backend)
    backend.enqueue(Script(pieces=["Fine."]))
    done = await until_done(orchestrator, "How are you?")
    await orchestrator.aclose()  # not `recorded`: closing waits for the record itself
    assert [r.done.answer_id for r in keeping.records] == [done.answer_id]
    with pytest.raises(LearningStoreError, match="closed database"):
        learner.store.data_version()
