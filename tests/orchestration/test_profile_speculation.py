"""A profile's threads, allowed chains and speculation switch, and a persona's speculative
decoding: honoured on llama.cpp, refused with a clear error on a backend that cannot."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.backends.scripted import ScriptedBackend
from mirador.catalog.manifest import manifest_for
from mirador.energy.meter import EnergyMeter
from mirador.energy.power import ScriptedPower
from mirador.energy.profiles import EnergyConfig, Profile, When
from mirador.errors import ConfigError
from mirador.orchestration.events import Ack, Done, ErrorEvent, Event
from mirador.orchestration.hooks import ChainChoice, Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.profiles import ProfileLimits
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings, load_settings
from tests.support.spy import SpyBackend

SPECULATIVE = [ModelStage("summary", "summariser", 0.9, timeout=120, max_tokens=12)]


@pytest.fixture
def home(isolated_home: Path) -> Path:
    """A persona that asks for prompt lookup, on the default model."""
    (isolated_home / "manifest.yaml").write_text(yaml.safe_dump({"personas": [
        {"id": "summariser", "model": "quick", "system": "Summarise.",
         "speculative": {"method": "prompt_lookup", "draft_tokens": 6}}]}))
    return isolated_home


def lean(**fields: Any) -> Settings:
    settings = load_settings()
    settings.config.energy = EnergyConfig(profile="lean", profiles={"lean": Profile(**fields)})
    return settings


class Picks:
    """A chooser that always picks one chain (the learner's place)."""

    def __init__(self, chain: str) -> None:
        self.chain = chain

    def choose(self, query: Query) -> ChainChoice:
        return ChainChoice(self.chain, "technical", "scripted")


async def run(orchestrator: Orchestrator, query: str, **kwargs: object) -> list[Event]:
    return [e async for e in orchestrator.process(query, remember=False, **kwargs)]  # type: ignore[arg-type]


@pytest.fixture
async def spied(home: Path, llama_backend: LlamaCppBackend
                ) -> AsyncIterator[tuple[Orchestrator, SpyBackend, ScriptedPower]]:
    settings = load_settings()
    power = ScriptedPower(80, plugged=True)
    spy = SpyBackend(llama_backend)
    orchestrator = Orchestrator(settings, limits=ProfileLimits(settings, power,
                                                               EnergyMeter(7.5)))
    orchestrator.manager.use_backend("llamacpp", spy)
    yield orchestrator, spy, power
    await orchestrator.aclose()


async def test_speculation_runs_plugged_in_and_is_off_on_battery(
        spied: tuple[Orchestrator, SpyBackend, ScriptedPower]) -> None:
    orchestrator, spy, power = spied
    plugged = await run(orchestrator, "Summarise: tea, then a walk.", stages=SPECULATIVE)
    assert isinstance(plugged[-1], Done) and plugged[-1].status == "ok"
    asked = spy.requests[-1].speculative
    assert asked is not None and asked.draft_tokens == 6
    power.set(10, plugged=False)  # battery: guesses spend energy to buy time, so none
    low = await run(orchestrator, "Summarise: tea, then a walk.", stages=SPECULATIVE)
    assert isinstance(low[-1], Done) and low[-1].profile == "battery"
    assert spy.requests[-1].speculative is None


async def test_a_backend_that_cannot_speculate_refuses_the_persona(home: Path) -> None:
    orchestrator = Orchestrator(load_settings())
    orchestrator.manager.use_backend("llamacpp", ScriptedBackend())
    try:
        events = await run(orchestrator, "Summarise this.", stages=SPECULATIVE)
    finally:
        await orchestrator.aclose()
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors and "cannot do speculative decoding" in errors[0].message
    assert "remove 'speculative'" in errors[0].message


async def test_the_profiles_threads_reach_the_request(home: Path) -> None:
    settings = lean(threads=1)
    backend = ScriptedBackend()
    orchestrator = Orchestrator(settings, limits=ProfileLimits(settings, ScriptedPower()))
    orchestrator.manager.use_backend("llamacpp", backend)
    try:
        await run(orchestrator, "Hi", stages=[ModelStage("a", "quick", 0.5)])
    finally:
        await orchestrator.aclose()
    assert backend.requests[-1].threads == 1


@pytest.mark.parametrize(("allowed", "chain"), [
    (["rapid_decision"], "rapid_decision"), (["auto"], "auto"),
    (["technical_mastery", "auto"], "technical_mastery")])
async def test_routing_picks_only_among_the_profiles_chains(home: Path, allowed: list[str],
                                                            chain: str) -> None:
    settings = lean(chains=allowed)
    orchestrator = Orchestrator(settings, limits=ProfileLimits(settings, ScriptedPower()),
                                chooser=Picks("technical_mastery"))
    orchestrator.manager.use_backend("llamacpp", ScriptedBackend())
    try:
        ack = (await run(orchestrator, "How do I write a Python decorator?"))[0]
        named = (await run(orchestrator, "Hi", chain="calculation"))[0]
    finally:
        await orchestrator.aclose()
    assert isinstance(ack, Ack) and ack.chain == chain
    assert isinstance(named, Ack) and named.chain == "calculation", "the person's --chain runs"


def test_unknown_chains_and_threads_below_one_are_refused(home: Path) -> None:
    with pytest.raises(ConfigError, match="profile 'lean' allows chain.s. nope, not in the "
                                          "manifest .known: auto, "):
        ProfileLimits(lean(chains=["nope", "auto"]), ScriptedPower(),
                      manifest=manifest_for(load_settings()))
    with pytest.raises(ValueError, match="threads"):
        Profile(threads=0)


class SlowPicks(Picks):
    """A chooser that thinks for a while (the learner embedding the query)."""

    def choose(self, query: Query) -> ChainChoice:
        time.sleep(0.5)
        return super().choose(query)


@pytest.mark.parametrize(("chain", "outcome"), [
    ("rapid_decision", "quick's prompt was read ("),
    ("technical_mastery", "the first stage runs tech_expert")])
async def test_the_likely_first_prompt_is_read_while_the_chain_is_chosen(
        spied: tuple[Orchestrator, SpyBackend, ScriptedPower], chain: str,
        outcome: str) -> None:
    orchestrator, _, power = spied
    orchestrator.chooser = SlowPicks(chain)
    short = {"battery": Profile(max_tokens=8, deeper_stages=False, speculate=False,
                                when=When(battery_below=30)),
             "performance": Profile(max_tokens=8, prefill=True, when=When())}  # in this order
    orchestrator.limits.config = EnergyConfig(profiles=short)  # type: ignore[union-attr]
    done = (await run(orchestrator, "How do I keep basil alive?"))[-1]
    assert isinstance(done, Done) and done.speculated is not None
    assert outcome in done.speculated, done.speculated
    assert done.speculated.endswith("and used") == (chain == "rapid_decision")
    power.set(10, plugged=False)  # battery: no speculation of any kind
    low = (await run(orchestrator, "How do I keep basil alive?"))[-1]
    assert isinstance(low, Done) and low.speculated is None
    unset = {"performance": Profile(max_tokens=8, when=When())}  # prefill off by default
    orchestrator.limits.config = EnergyConfig(profiles=unset)  # type: ignore[union-attr]
    power.set(80, plugged=True)
    plain = await run(orchestrator, "How do I keep basil alive?")
    assert isinstance(plain[-1], Done) and plain[-1].speculated is None
