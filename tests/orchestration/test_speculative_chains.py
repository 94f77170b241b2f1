"""Speculative execution: the close candidates' first stages race, one is committed to,
the others are cancelled and their tokens counted; scripted streams for the commit,
cancel and waste logic, real SmolLM2 and a tiny GGUF for two models at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mirador.backends import ChatRequest
from mirador.backends.base import BackendEvent, Capabilities
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.backends.scripted import Script, ScriptedBackend
from mirador.catalog.manifest import ModelEntry
from mirador.orchestration.events import Ack, Done, Event, Token
from mirador.orchestration.hooks import ChainChoice, Limits, Query, Ranked
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.routing import classify
from mirador.settings import RoutingConfig, Settings, StageConfig, load_settings

QUESTION = "how do I plan a weekly budget for my groceries"
ANSWER = "Write down what you spend each week, then set a fixed limit and plan meals."
GOOD = [f"{w} " for w in ANSWER.split()]
ECHO = [f"{w} " for w in QUESTION.split()]  # a first stage that only repeats the question


@pytest.fixture
def home(isolated_home: Path) -> Path:
    (isolated_home / "manifest.yaml").write_text(yaml.safe_dump({
        "personas": [{"id": "alpha", "model": "smollm2-135m", "system": "ALPHA"},
                     {"id": "beta", "model": "smollm2-135m", "system": "BETA"}],
        "chains": [{"id": "chain_a", "steps": ["alpha", "quick"]},
                   {"id": "chain_b", "steps": ["beta"]}]}))
    return isolated_home


@dataclass
class ByPersona(ScriptedBackend):
    """Scripts chosen by the persona's system prompt, so racing streams get their own."""

    by_system: dict[str, Script] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # pieces each persona's stream gave

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        system = str(request.messages[0].content)
        key = next((k for k in self.by_system if k in system), None)
        if key is not None:
            self.scripts.appendleft(self.by_system[key])
        async for event in super().stream_chat(request):
            if key is not None:
                self.sent[key] = self.sent.get(key, 0) + 1
            yield event


@dataclass
class Turns(ByPersona):
    """A backend whose models each serve `n` streams at once."""

    capabilities: Capabilities = Capabilities(takes_turns=True)
    n: int = 1

    def sequences(self, model: ModelEntry) -> int:
        return self.n


class Unsure:
    """A chooser torn between chain_a (its pick) and chain_b."""

    def __init__(self, gap: float = 0.01) -> None:
        self.gap = gap

    def choose(self, query: Query) -> ChainChoice:
        return ChainChoice("chain_a", "general/simple", "scripted",
                           (Ranked("chain_a", 0.6), Ranked("chain_b", 0.6 - self.gap)))


@dataclass
class Meter:
    """A profile and a meter the test controls: each reading adds 10 J."""

    speculate: bool = True
    total: float = 0.0

    def limits(self) -> Limits:
        return Limits("test", speculate=self.speculate)

    def joules(self) -> tuple[float, str]:
        self.total += 10.0
        return self.total, "scripted"


def configured(**speculation: object) -> Settings:
    settings = load_settings()
    values = {"enabled": True, "max_load": None, "commit_tokens": 8, **speculation}
    settings.config.speculation = settings.config.speculation.model_copy(update=values)
    return settings


def orchestrator(settings: Settings, backend: ScriptedBackend, gap: float = 0.01,
                 meter: Meter | None = None) -> Orchestrator:
    built = Orchestrator(settings, chooser=Unsure(gap), limits=meter)
    built.manager.use_backend("llamacpp", backend)
    return built


async def events_of(built: Orchestrator) -> list[Event]:
    async with built:
        return [e async for e in built.process(QUESTION, remember=False)]


def done_of(events: list[Event]) -> Done:
    done = events[-1]
    assert isinstance(done, Done)
    return done


def test_a_choice_says_how_sure_it_is() -> None:
    choice = ChainChoice("a", "t", ranked=(Ranked("a", 0.5), Ranked("b", 0.62),
                                           Ranked("c", 0.45), Ranked("d", 0.2)))
    assert choice.margin == pytest.approx(-0.12)
    assert choice.rivals(0.15, 3) == ("b", "c")
    assert choice.rivals(0.15, 2) == ("b",)
    assert choice.rivals(0.01, 3) == ()
    assert ChainChoice("a", "t").margin is None


async def test_the_better_first_stage_is_committed_and_the_other_cancelled(home: Path) -> None:
    backend = ByPersona(by_system={"ALPHA": Script(pieces=ECHO, hang_after=len(ECHO)),
                                   "BETA": Script(pieces=GOOD, delay=0.01)})
    events = await events_of(orchestrator(configured(), backend, meter=Meter()))
    done = done_of(events)
    ack = next(e for e in events if isinstance(e, Ack))
    assert ack.chain == "chain_b" and ack.stages == ["beta"], done.speculation
    assert {e.stage for e in events if isinstance(e, Token)} == {"beta"}  # nothing of alpha
    assert done.answer.startswith("Write down what you spend")
    spec = done.speculation
    assert spec is not None and spec.ran and spec.committed == "chain_b"
    assert spec.candidates == ["chain_a", "chain_b"] and spec.predicted == "chain_a"
    assert spec.wasted_tokens == backend.sent["ALPHA"] == len(ECHO)  # then it hung: cancelled
    assert spec.wasted_joules is not None and 0 < spec.wasted_joules < done.energy_j  # type: ignore[operator]
    assert backend.closed_streams == len(backend.requests) == 2


async def test_a_tie_goes_to_the_pick_whose_later_stages_run(home: Path) -> None:
    backend = ByPersona(by_system={"ALPHA": Script(pieces=GOOD), "BETA": Script(pieces=GOOD)})
    events = await events_of(orchestrator(configured(), backend))
    done = done_of(events)
    assert done.speculation is not None and done.speculation.committed == "chain_a"
    assert [e.stage for e in events if isinstance(e, Token)][:len(GOOD)] == ["alpha"] * len(GOOD)
    assert "quick" in done.answers  # the committed chain's second stage ran as usual
    assert done.speculation.wasted_tokens == len(GOOD)
    assert done.speculation.wasted_joules is None  # no meter


@pytest.mark.parametrize(("settings_change", "meter", "n", "why"), [
    ({}, Meter(speculate=False), 2, "the test profile does not speculate"),
    ({}, None, 1, "would only take turns"),
    ({"max_load": 1e-9}, None, 2, "the cores are busy"),
])
async def test_speculation_is_refused_when_it_cannot_run_at_once(
        home: Path, settings_change: dict[str, object], meter: Meter | None, n: int,
        why: str) -> None:
    backend = Turns(by_system={"ALPHA": Script(pieces=GOOD), "BETA": Script(pieces=GOOD)}, n=n)
    done = done_of(await events_of(orchestrator(configured(**settings_change), backend,
                                                meter=meter)))
    spec = done.speculation
    assert spec is not None and not spec.ran and why in spec.reason
    assert spec.committed == "chain_a" and spec.wasted_tokens == 0
    assert "BETA" not in backend.sent  # the rival never ran


async def test_two_free_sequences_on_one_model_let_the_candidates_race(home: Path) -> None:
    backend = Turns(by_system={"ALPHA": Script(pieces=GOOD), "BETA": Script(pieces=GOOD)}, n=2)
    done = done_of(await events_of(orchestrator(configured(), backend)))
    assert done.speculation is not None and done.speculation.ran


@pytest.mark.parametrize(("gap", "enabled"), [(0.3, True), (0.01, False)])
async def test_a_sure_choice_or_speculation_off_runs_the_pick_alone(
        home: Path, gap: float, enabled: bool) -> None:
    backend = ByPersona(by_system={"ALPHA": Script(pieces=GOOD), "BETA": Script(pieces=GOOD)})
    done = done_of(await events_of(orchestrator(configured(enabled=enabled), backend, gap=gap)))
    assert done.speculation is None and "BETA" not in backend.sent


async def test_a_caller_who_stops_reading_stops_every_candidate(home: Path) -> None:
    endless = Script(pieces=[f"w{i}" for i in range(500)], delay=0.01)
    backend = ByPersona(by_system={"ALPHA": endless, "BETA": endless})
    async with (orchestrator(configured(), backend) as built,
                aclosing(built.process(QUESTION, remember=False)) as events):
        async for event in events:
            if isinstance(event, Token):
                break
    assert len(backend.requests) == 2 and backend.closed_streams == 2
    assert all(count < 500 for count in backend.sent.values())  # neither ran to its end


async def test_real_models_race_on_two_models_and_one_is_committed(
        isolated_home: Path, llama_backend: LlamaCppBackend, tiny_gguf: Path) -> None:
    """SmolLM2 and a tiny random GGUF: two models, one sequence each, so they run at once;
    two candidates on SmolLM2 alone would only take turns, and do not race."""
    (isolated_home / "manifest.yaml").write_text(yaml.safe_dump({
        "models": [{"id": "tiny", "backend": "llamacpp", "path": str(tiny_gguf),
                    "context_length": 512}],
        "personas": [{"id": "alpha", "model": "smollm2-135m", "system": "Answer briefly.",
                      "options": {"max_tokens": 24, "temperature": 0.0}},
                     {"id": "beta", "model": "tiny", "system": "Answer briefly.",
                      "options": {"max_tokens": 24, "temperature": 0.0}}],
        "chains": [{"id": "chain_a", "steps": ["alpha"]}, {"id": "chain_b", "steps": ["beta"]}]}))
    built = Orchestrator(configured(), chooser=Unsure())
    built.manager.use_backend("llamacpp", llama_backend)
    async with built:
        events = [e async for e in built.process("What is the capital of France?",
                                                 remember=False)]
    done = done_of(events)
    spec = done.speculation
    assert spec is not None and spec.ran, spec
    assert done.status == "ok" and spec.committed in ("chain_a", "chain_b")
    committed_stage = "alpha" if spec.committed == "chain_a" else "beta"
    assert {e.stage for e in events if isinstance(e, Token)} == {committed_stage}
    assert spec.wasted_tokens > 0 and spec.commit_seconds is not None


def test_the_routing_says_how_near_a_threshold_it_is() -> None:
    assert classify("How do I plan a budget?").runner_up == ("simple", 0.05)
    assert classify("What is a Roth IRA?").runner_up == ("medium", 3.1)


async def test_without_a_learner_an_unsure_routing_races_its_two_complexities(
        home: Path) -> None:
    settings = configured()
    settings.config.stages = [StageConfig(name="first_a", persona="alpha", confidence=0.5),
                              StageConfig(name="first_b", persona="beta", confidence=0.9)]
    settings.config.routing = RoutingConfig(simple=["first_a"], medium=["first_b"],
                                            complex=["first_b"])
    backend = ByPersona(by_system={"ALPHA": Script(pieces=GOOD), "BETA": Script(pieces=GOOD)})
    built = Orchestrator(settings)
    built.manager.use_backend("llamacpp", backend)
    done = done_of(await events_of_query(built, "How do I plan a budget?"))
    spec = done.speculation
    assert spec is not None and spec.ran
    assert spec.candidates == ["auto:medium", "auto:simple"] and spec.predicted == "auto:medium"
    assert backend.sent.keys() == {"ALPHA", "BETA"}


async def events_of_query(built: Orchestrator, query: str) -> list[Event]:
    async with built:
        return [e async for e in built.process(query, remember=False)]
