"""Energy profiles in answers: unplugging (a scripted battery) switches the profile for
the very next answer, which runs fewer stages and costs fewer joules (measured)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.energy.meter import CPU_TIME, EnergyMeter
from mirador.energy.power import ScriptedPower
from mirador.orchestration.events import Done, StageStart
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.profiles import ProfileLimits
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings

STAGES = [ModelStage("quick_response", "quick", 0.6, timeout=120, max_tokens=40),
          ModelStage("deep_analysis", "analyst", 0.85, timeout=120, max_tokens=40),
          ModelStage("synthesis", "synthesizer", 0.95, timeout=120, max_tokens=40)]


@pytest.fixture
async def powered(settings: Settings, llama_backend: LlamaCppBackend
                  ) -> AsyncIterator[tuple[Orchestrator, ScriptedPower]]:
    power = ScriptedPower(25, plugged=True)
    orchestrator = Orchestrator(settings, limits=ProfileLimits(settings, power,
                                                               EnergyMeter(7.5)))
    orchestrator.stages = list(STAGES)
    orchestrator.manager.use_backend("llamacpp", llama_backend)
    yield orchestrator, power
    await orchestrator.aclose()


async def answer(orchestrator: Orchestrator) -> tuple[Done, list[str]]:
    started, done = [], None
    async for event in orchestrator.process("How can I sleep better?", remember=False):
        if isinstance(event, StageStart):
            started.append(event.stage)
        if isinstance(event, Done):
            done = event
    assert done is not None and done.status in ("ok", "partial")
    return done, started


async def test_unplugging_switches_the_next_answer_to_fewer_stages_and_joules(
        powered: tuple[Orchestrator, ScriptedPower]) -> None:
    orchestrator, power = powered
    routing = orchestrator.settings.config.routing
    routing.simple = routing.medium = routing.complex = [s.name for s in STAGES]
    plugged, plugged_stages = await answer(orchestrator)
    assert plugged.profile == "performance" and plugged_stages == [s.name for s in STAGES]
    power.set(25, plugged=False)  # unplugged, 25% left: the battery profile
    unplugged, unplugged_stages = await answer(orchestrator)
    assert unplugged.profile == "battery" and unplugged_stages == ["quick_response"]
    assert unplugged.energy_method == plugged.energy_method == CPU_TIME
    assert plugged.energy_j is not None and unplugged.energy_j is not None
    assert unplugged.energy_j < plugged.energy_j, (unplugged.energy_j, plugged.energy_j)


async def test_a_profile_caps_every_stage_and_leaves_chosen_stages_alone(
        powered: tuple[Orchestrator, ScriptedPower]) -> None:
    orchestrator, power = powered
    power.set(80, plugged=False)  # balanced: every stage, at most 320 tokens each
    limits = orchestrator.limits.limits()  # type: ignore[union-attr]
    assert limits.profile == "balanced" and limits.deeper_stages
    power.set(10, plugged=False)  # battery: the first stage, at most 160 tokens
    long_stage = [ModelStage("quick_response", "quick", 0.6, timeout=120, max_tokens=400)]
    events = [e async for e in orchestrator.process("Tell me a long story about a cat.",
                                                    stages=long_stage, remember=False)]
    done = events[-1]
    assert isinstance(done, Done) and done.profile == "battery"
    assert done.answers["quick_response"].tokens <= 160
    chosen = [e async for e in orchestrator.process("Plan my week.", stages=STAGES[:2],
                                                    remember=False)]
    assert [e.stage for e in chosen if isinstance(e, StageStart)] == \
        ["quick_response", "deep_analysis"], "stages the person chose run even on battery"
