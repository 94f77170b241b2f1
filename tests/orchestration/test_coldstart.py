"""Nothing that only the later stages need runs before the first stage's first token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mirador.backends.scripted import Script, ScriptedBackend
from mirador.orchestration.events import Done, StageStart, Token
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings

TWO = [ModelStage("quick_response", "quick", 0.6, timeout=30),
       ModelStage("synthesis", "synthesizer", 0.95, timeout=30)]


class RecallSpy:
    """A context source that notes when recall was asked for."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def context_for(self, query: Query) -> str:
        self.asked.set()
        return "The person prefers mornings."


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
