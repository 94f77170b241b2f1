"""The contracts between the orchestrator and what plugs into it.

Memory, learning, preload and the server import these, never the orchestrator's
internals: a `ContextSource` supplies background for the later stages, `AnswerSink`s
are told of every finished answer, and a `ChainChooser` picks the chain for a query.

The lifecycle: sinks are told of an answer in a task the orchestrator owns, started
just before its `Done` is yielded (so a caller that stops reading at `Done` loses
nothing), each sink isolated from the others' failures; `Orchestrator.recorded(id)`
waits for that task, and `Orchestrator.aclose` waits for every one of them, then
closes each hook that is `Closable`, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from mirador.backends import ChatRequest, Message
from mirador.catalog.manifest import ResolvedPersona
from mirador.orchestration.events import Done, StageEnd
from mirador.orchestration.routing import Route
from mirador.orchestration.stages import ModelStage


@dataclass(frozen=True)
class Query:
    """A query and what surrounds it: the session's earlier turns and its namespace."""

    text: str
    session_id: str | None = None
    namespace: str = "default"
    history: tuple[Message, ...] = ()
    images: tuple[str, ...] = ()  # base64 image files shown with the question


@dataclass(frozen=True)
class Plan:
    complexity: str
    stages: tuple[ModelStage, ...]
    route: Route | None = None
    chain: str | None = None
    choice: ChainChoice | None = None
    shaped: tuple[str, ...] = ()  # what `PlanShaper`s did to it, in words (`mirador why`)
    prefer: Literal["shorter", "longer"] | None = None  # the answer length the judge favours


@dataclass(frozen=True)
class Ranked:
    """One candidate chain and the chooser's score for it (higher: more likely to please)."""

    chain: str
    score: float


@dataclass(frozen=True)
class ChainChoice:
    """A chooser's pick: the chain (or 'auto') for this query, and why.

    `ranked` lists the candidates it weighed, the pick first, then the others best
    first, each with its score: how sure the chooser was (`margin`), which speculative
    execution reads (`orchestration/speculative_chains.py`)."""

    chain: str
    query_type: str
    reason: str = ""
    ranked: tuple[Ranked, ...] = ()

    @property
    def margin(self) -> float | None:
        """How far the pick's score leads the best other candidate's (negative when the
        chooser explored); None with no other candidate."""
        scores = {r.chain: r.score for r in self.ranked}
        others = [s for c, s in scores.items() if c != self.chain]
        if self.chain not in scores or not others:
            return None
        return round(scores[self.chain] - max(others), 4)

    def rivals(self, margin: float, most: int) -> tuple[str, ...]:
        """The other chains scored within `margin` of the pick, best first; at most
        `most - 1` of them (`most` counts the pick)."""
        mine = next((r.score for r in self.ranked if r.chain == self.chain), None)
        if mine is None:
            return ()
        close = [r for r in self.ranked if r.chain != self.chain and abs(mine - r.score) <= margin]
        close.sort(key=lambda r: -r.score)
        return tuple(r.chain for r in close[:max(0, most - 1)])


@dataclass
class AnswerRecord:
    """What a sink is told when an answer is finished."""

    query: Query
    plan: Plan
    done: Done
    stage_ends: list[StageEnd] = field(default_factory=list)


@dataclass(frozen=True)
class Recollection:
    """What memory gives an answer: `text` (memories, preferences, recent turns, compiled
    for the later stages) and `told`, what the person told that bears on the question, in
    their own words, oldest first (a first stage is shown these as earlier turns: small
    models answer from a conversation far better than from notes)."""

    text: str = ""
    told: tuple[str, ...] = ()


class ContextSource(Protocol):
    """Supplies background (memories, preferences) for the stages."""

    async def context_for(self, query: Query) -> Recollection: ...

    async def might_know(self, query: Query) -> bool:
        """Whether recall may find something for `query`, judged cheaply (milliseconds, no
        model): a yes makes the first stage wait for recall when the question speaks of
        the person."""
        ...


class AnswerSink(Protocol):
    """Receives every finished answer (memory stores it, learning logs it)."""

    async def answer_finished(self, record: AnswerRecord) -> None: ...


class ChainChooser(Protocol):
    """Picks the chain for a query when the caller did not name stages or a chain."""

    def choose(self, query: Query) -> ChainChoice | None: ...


class RequestShaper(Protocol):
    """Adjusts a stage's request just before it runs (Model DNA, personal adapters)."""

    def shape(self, stage: str, persona: ResolvedPersona,
              request: ChatRequest) -> ChatRequest: ...


class PlanShaper(Protocol):
    """Adjusts a plan routing or the learner made (Model DNA's depth and verbosity).

    Asked after the stages are chosen, never for a plan the person spelled out
    (`--stages`, `--chain`); the energy profile's limits apply after it. It may drop
    or add configured stages (`full`: the stages routing runs for a complex query),
    say which answer length the judge should favour among sound stages (`Plan.prefer`),
    and says what it did in `Plan.shaped`."""

    def shape_plan(self, plan: Plan, full: Sequence[ModelStage]) -> Plan: ...


@runtime_checkable
class Closable(Protocol):
    """A hook that holds files or threads; the orchestrator's `aclose` closes it, once."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    """What the energy profile in force allows an answer (see `mirador.energy`).

    `deeper_stages=False` runs only the first stage of a plan the person did not
    spell out (`--stages` and `--chain` are theirs to choose); `max_tokens` caps
    every stage; `chains` bounds what the learner and routing pick (the person's
    `--chain` still runs). `joules()` is the energy meter's running total, `method` how it
    measures."""

    profile: str
    reason: str = ""
    deeper_stages: bool = True
    max_tokens: int | None = None
    preload: bool = True
    energy_weight: float = 0.0  # quality per watt: see mirador.energy.profiles.Profile
    energy_budget: float | None = None  # joules per answer a chosen chain may cost
    threads: int | None = None  # CPU threads llama.cpp models run with (None: configured)
    chains: tuple[str, ...] | None = None  # the chains that may be picked (None: any)
    speculate: bool = True  # speculative decoding, prefill and execution may run
    prefill: bool = False  # the likely first prompt is read while the chain is chosen

    def allows(self, chain: str) -> bool:
        """Whether the learner or routing may pick `chain` ('auto': complexity routing)."""
        return self.chains is None or chain in self.chains

    @property
    def weighs_energy(self) -> bool:
        """The chain choice must weigh joules (a trade-off or a budget is set)."""
        return bool(self.energy_weight) or self.energy_budget is not None


class LimitsSource(Protocol):
    """The energy profile in force now, and the meter answers are measured with."""

    def limits(self) -> Limits: ...

    def joules(self) -> tuple[float, str]:
        """The meter's running total (joules) and how it measures."""
        ...
