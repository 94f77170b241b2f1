"""What a caller asks of every stage (`Overrides`), on the real embedded model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.catalog.manifest import SamplingOptions
from mirador.orchestration import prompts
from mirador.orchestration.events import Done, Event, StageEnd
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage, Overrides
from mirador.settings import Settings
from tests.support.spy import SpyBackend

STAGES = [ModelStage("quick_response", "quick", 0.6, timeout=60, max_tokens=10),
          ModelStage("synthesis", "synthesizer", 0.95, timeout=60, max_tokens=10)]


@pytest.fixture
async def spied(settings: Settings, llama_backend: LlamaCppBackend
                ) -> AsyncIterator[tuple[Orchestrator, SpyBackend]]:
    spy = SpyBackend(llama_backend)
    orchestrator = Orchestrator(settings)
    orchestrator.manager.use_backend("llamacpp", spy)  # type: ignore[arg-type]
    yield orchestrator, spy
    await orchestrator.aclose()


async def run(orchestrator: Orchestrator, overrides: Overrides) -> list[Event]:
    return [e async for e in orchestrator.process("Name a fruit.", stages=STAGES,
                                                  overrides=overrides)]


async def test_system_and_options_reach_every_stage(
        spied: tuple[Orchestrator, SpyBackend]) -> None:
    orchestrator, spy = spied
    wish = Overrides(system="Answer in French.",
                     options=SamplingOptions(temperature=0.2, seed=4, stop=["zebra"]))
    await run(orchestrator, wish)
    assert len(spy.requests) == 2
    for request in spy.requests:
        system = request.messages[0]
        assert system.role == "system" and system.content.endswith("\n\nAnswer in French.")
        assert (request.options.temperature, request.options.seed) == (0.2, 4)
        assert request.options.stop and "zebra" in request.options.stop


async def test_the_token_limit_bounds_the_whole_answer(
        spied: tuple[Orchestrator, SpyBackend]) -> None:
    orchestrator, spy = spied
    events = await run(orchestrator, Overrides(options=SamplingOptions(temperature=0),
                                               max_tokens=14))
    ends = [e for e in events if isinstance(e, StageEnd)]
    done = events[-1]
    assert isinstance(done, Done) and done.tokens <= 14
    assert spy.requests[0].options.max_tokens == 10
    if len(ends) == 2:
        assert spy.requests[1].options.max_tokens == 14 - ends[0].tokens
    assert ends[-1].finish_reason in ("stop", "length")
    assert all(e.prompt_tokens and e.prompt_tokens > 5 for e in ends)


async def test_a_spent_limit_runs_no_further_stage(
        spied: tuple[Orchestrator, SpyBackend]) -> None:
    orchestrator, spy = spied
    events = await run(orchestrator, Overrides(max_tokens=3))
    ends = [e for e in events if isinstance(e, StageEnd)]
    assert len(spy.requests) == 1 and len(ends) == 1
    assert (ends[0].tokens, ends[0].finish_reason) == (3, "length")


def test_request_options_keep_the_persona_stops_and_cap_at_the_budget() -> None:
    persona = SamplingOptions(stop=["<end>"], max_tokens=100, temperature=0.7)
    mine = prompts.request_options(persona, SamplingOptions(stop=["."], seed=1), budget=20)
    assert (mine.stop, mine.max_tokens, mine.temperature, mine.seed) == (
        ["<end>", "."], 20, 0.7, 1)
    assert prompts.request_options(persona, None, None) == persona
    assert prompts.request_options(SamplingOptions(), None, 5).max_tokens == 5
