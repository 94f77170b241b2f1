"""Nothing that only the later stages need runs before the first stage's first token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mirador.backends.scripted import Script, ScriptedBackend
from mirador.orchestration.events import Done, StageStart, Token
from mirador.orchestration.hooks import Query, Recollection
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings

TWO = [ModelStage("quick_response", "quick", 0.6, timeout=30),
       ModelStage("synthesis", "synthesizer", 0.95, timeout=30)]


TOLD = "My dentist appointment is on Tuesday at 3pm."


class RecallSpy:
    """A context source that notes when recall was asked for; `knows`: what its cheap
    look says, `delay`: how long recall takes."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.knows = False
        self.delay = 0.0

    async def context_for(self, query: Query) -> Recollection:
        self.asked.set()
        await asyncio.sleep(self.delay)
        return Recollection("The person prefers mornings.", told=(TOLD,))

    async def might_know(self, query: Query) -> bool:
        return self.knows


@pytest.fixture
async def scripted(settings: Settings) -> AsyncIterator[tuple[Orchestrator, ScriptedBackend,
                                                              RecallSpy]]:
    backend, spy = ScriptedBackend(), RecallSpy()
    orchestrator = Orchestrator(settings, context=spy)
    orchestrator.manager.use_backend("llamacpp", backend)
    yield orchestrator, backend, spy
    await orchestrator.aclose()


async def test_recall_starts_at_the_first_token_and_reaches_the_later_stage(
        scripted: tuple[Orchestrator, ScriptedBackend, RecallSpy]) -> None:
    orchestrator, backend, spy = scripted
    backend.enqueue(Script(pieces=["Plan", " it"], delay=0.05), Script(pieces=["Done"]))
    asked_at: dict[tuple[str, str], bool] = {}
    async for event in orchestrator.process("What should I focus on today?", stages=TWO):
        if isinstance(event, StageStart | Token) and (event.type, event.stage) not in asked_at:
            asked_at[event.type, event.stage] = spy.asked.is_set()
            await asyncio.sleep(0.01)  # time for a recall started before this event to run
        if isinstance(event, Done):
            assert event.status == "ok"
    assert asked_at == {("stage_start", "quick_response"): False,
                        ("token", "quick_response"): False,
                        ("stage_start", "synthesis"): True, ("token", "synthesis"): True}
    later = backend.requests[1].messages
    assert any("prefers mornings" in m.content for m in later)


async def test_a_first_stage_without_tokens_still_gives_the_later_stage_its_recall(
        scripted: tuple[Orchestrator, ScriptedBackend, RecallSpy]) -> None:
    orchestrator, backend, spy = scripted
    backend.enqueue(Script(pieces=[]), Script(pieces=["Done"]))
    await orchestrator.answer("What should I focus on today?", stages=TWO)
    assert spy.asked.is_set()
    assert any("prefers mornings" in m.content
               for m in backend.requests[1].messages)


async def test_a_question_about_the_person_that_memory_may_answer_waits_for_recall(
        scripted: tuple[Orchestrator, ScriptedBackend, RecallSpy]) -> None:
    orchestrator, backend, spy = scripted
    spy.knows = True
    backend.enqueue(Script(pieces=["Tuesday at 3pm."]))
    await orchestrator.answer("When is my dentist appointment?", stages=TWO[:1])
    first = [m.content for m in backend.requests[0].messages]
    assert first[-3:] == [TOLD, f"Noted: {TOLD}", "When is my dentist appointment?"]


@pytest.mark.parametrize("query,knows", [("When is my dentist appointment?", False),
                                         ("What is the capital of Peru?", True)])
async def test_no_wait_when_memory_cannot_know_or_the_question_is_not_about_the_person(
        scripted: tuple[Orchestrator, ScriptedBackend, RecallSpy], query: str,
        knows: bool) -> None:
    orchestrator, backend, spy = scripted
    spy.knows = knows
    backend.enqueue(Script(pieces=["Lima."]))
    await orchestrator.answer(query, stages=TWO[:1])
    assert not spy.asked.is_set()
    assert all(m.content != TOLD for m in backend.requests[0].messages)


async def test_a_slow_recall_is_waited_for_only_so_long_and_still_reaches_later_stages(
        scripted: tuple[Orchestrator, ScriptedBackend, RecallSpy]) -> None:
    orchestrator, backend, spy = scripted
    spy.knows, spy.delay = True, 0.5
    orchestrator.settings.config.memory.first_stage_wait = 0.05
    backend.enqueue(Script(pieces=["Soon."]), Script(pieces=["Tuesday."]))
    await orchestrator.answer("When is my dentist appointment?", stages=TWO)
    assert all(m.content != TOLD for m in backend.requests[0].messages)
    assert any("prefers mornings" in m.content for m in backend.requests[1].messages)
