"""Speculative execution: when the chooser is unsure between chains, their first stages
run at once, and one is committed to.

The learner ranks its candidate chains (`ChainChoice.ranked`). When another chain scores
within `speculation.margin` of the pick, the first stage of each close candidate (at most
`speculation.max_candidates`, the pick's included) starts at the same time. Without a
learner, the complexity routing is unsure when its score lies within
`speculation.route_margin` of a threshold (`Route.runner_up`): the other complexity's
stages are the rival. Candidates whose first stage is the same persona on the same model
would say the same thing, so only one of them runs (with the default routing every
complexity starts with `quick_response`, so the routing never races).

The commit: once every candidate's first stage has `speculation.commit_tokens` tokens (or
has ended), each text so far is scored as `quality.score_stage` scores a stage (relevance
to the question by MiniLM, repetition, loops, echoes); the best-scoring candidate is
committed to, unless the chooser's pick scores within `quality.WORSE_BY` of it (ties go
to the pick); a flawed first stage (empty, looping, echoing the question, copying) never
wins over a sound one. The others are cancelled at once: their streams are closed, which stops
the backend within a token, and their tokens are counted as wasted.

Nothing a discarded candidate said is shown: every candidate's tokens are held until
the commit, then the committed one's are released and the rest stream live. Streaming
the pick live and discarding the others would show the person a discarded answer
whenever the commit goes another way; holding `commit_tokens` tokens bounds the delay.
The `Ack` is sent at the commit, so it names the chain that answers.

It runs only when `speculation.enabled` (off by default: bench/speculation.py found it did
not pay), and only when it can run at once, not in turns: the profile allows speculation
(`Limits.speculate`; `battery` does not), the cores are free (the 1-minute load average
per core is below `speculation.max_load`), no first stage calls tools (a tool may act on
the world), and each candidate's model has a free sequence for it
(`TakesTurns.sequences(model)` less its busy streams: with llama.cpp's one sequence per
loaded model, two candidates on one model would only take turns). Otherwise the pick
runs alone and `Done.speculation` says why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mirador.backends import Message, turns_of
from mirador.catalog.manifest import AUTO_CHAIN, ModelEntry, ResolvedPersona, SamplingOptions
from mirador.errors import MiradorError
from mirador.models.manager import ModelManager
from mirador.orchestration import prompts, quality
from mirador.orchestration.events import Done, Event, Speculation
from mirador.orchestration.hooks import Limits, Plan, Query, Recollection
from mirador.orchestration.planning import Planner, tokens_left
from mirador.orchestration.recall import Recall
from mirador.orchestration.stage_run import StageRun, StageRunner
from mirador.orchestration.stages import Overrides
from mirador.settings import SpeculationConfig

if TYPE_CHECKING:
    import numpy as np

    from mirador.embeddings import Embedder

Inputs = tuple[tuple[Message, ...], SamplingOptions]

log = logging.getLogger("mirador")


@dataclass(frozen=True)
class Candidate:
    """A chain that may answer: its plan and the personas its stages run."""

    plan: Plan
    personas: tuple[ResolvedPersona, ...]

    @property
    def name(self) -> str:
        """The chain, or `auto:COMPLEXITY` for the routing's stages."""
        return self.plan.chain or f"{AUTO_CHAIN}:{self.plan.complexity}"

    @property
    def first(self) -> ResolvedPersona:
        return self.personas[0]


def candidates(planner: Planner, query: Query, plan: Plan, limits: Limits | None,
               model: str | None, config: SpeculationConfig) -> list[Candidate]:
    """The pick and the close rivals (`rivals`), each with a first stage of its own; empty
    when the choice was sure (or no close rival starts differently)."""
    found = [Candidate(plan, tuple(planner.resolve(s, model) for s in plan.stages))]
    for rival in rivals(planner, query, plan, limits, config):
        personas = tuple(planner.resolve(s, model) for s in rival.stages)
        if personas and not any(_same_start(personas[0], c.first) for c in found):
            found.append(Candidate(rival, personas))
    return found if len(found) > 1 else []


def rivals(planner: Planner, query: Query, plan: Plan, limits: Limits | None,
           config: SpeculationConfig) -> list[Plan]:
    """The plans nearly chosen instead of `plan`: the chooser's chains scored within
    `speculation.margin` of its pick; else, for a plan the complexity routing made, the
    complexity across the nearest threshold when the score is within `route_margin` of it."""
    choice = plan.choice
    if choice is not None:
        return [planner.allowed(planner.shaped(planner.chosen(query, replace(choice, chain=chain))),
                                query, limits, chosen=False)
                for chain in choice.rivals(config.margin, config.max_candidates)
                if limits is None or limits.allows(chain)]
    if plan.route is None or plan.chain is not None:
        return []
    other, gap = plan.route.runner_up
    if gap > config.route_margin:
        return []
    return [planner.allowed(planner.shaped(planner.for_complexity(other, plan.route)), query,
                            limits, chosen=False)]


def _same_start(a: ResolvedPersona, b: ResolvedPersona) -> bool:
    return a.id == b.id and a.model == b.model


def load_per_core() -> float:
    """The 1-minute load average per core (how busy the cores are)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def free_sequences(manager: ModelManager, model: ModelEntry) -> int | None:
    """Streams `model` could serve at once now (None: its backend sets no limit)."""
    takes_turns = turns_of(manager.backend(model.backend))
    if takes_turns is None:
        return None
    busy = sum(s.busy for s in manager.status() if s.model_id == model.id)
    return max(0, takes_turns.sequences(model) - busy)


def refusal(manager: ModelManager, found: list[Candidate], limits: Limits | None,
            config: SpeculationConfig, load: Callable[[], float] = load_per_core
            ) -> str | None:
    """Why the candidates may not run at once, or None when they may."""
    if limits is not None and not limits.speculate:
        return f"the {limits.profile} profile does not speculate"
    if any(c.first.tools for c in found):
        return "a candidate's first stage calls tools, which may act on the world"
    if config.max_load is not None and (busy := load()) >= config.max_load:
        return f"the cores are busy (load {busy:.2f} per core, speculation.max_load " \
               f"{config.max_load:g})"
    wanted = Counter(c.first.model.id for c in found)
    models = {c.first.model.id: c.first.model for c in found}
    for model_id, count in wanted.items():
        try:
            free = free_sequences(manager, models[model_id])
        except MiradorError as exc:
            return f"model '{model_id}' cannot be asked ({exc})"
        if free is not None and free < count:
            return (f"model '{model_id}' has {free} free sequence(s) for {count} candidates: "
                    "they would only take turns")
    return None


@dataclass
class Entrant:
    """One candidate's first stage, running; its events held until the commit."""

    candidate: Candidate
    run: StageRun
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    ended: bool = False
    task: asyncio.Task[None] | None = None
    quality: quality.StageQuality | None = None

    def ready(self, tokens: int) -> bool:
        return self.ended or self.run.tokens >= tokens


class Race:
    """The candidates' first stages running at once, until one is committed to."""

    def __init__(self, entrants: list[Entrant], question: str, commit_tokens: int,
                 embedder: Embedder | None) -> None:
        self.entrants = entrants
        self.question = question
        self.commit_tokens = commit_tokens
        self.embedder = embedder
        self.winner = entrants[0]
        self.reason = ""
        self.wasted = 0
        self.started = time.perf_counter()
        self.seconds: float | None = None
        self._progress = asyncio.Event()
        self._question: asyncio.Future[np.ndarray] | None = None

    def start(self, runner: StageRunner, inputs: list[Inputs], limits: Limits | None) -> None:
        """Start every entrant's first stage."""
        for entrant, (messages, options) in zip(self.entrants, inputs, strict=True):
            plan = entrant.candidate.plan
            source = runner.run(plan.stages[0], entrant.candidate.first, messages,
                                options, entrant.run, limits)
            entrant.task = asyncio.ensure_future(self._pump(entrant, source))

    async def _pump(self, entrant: Entrant, source: AsyncGenerator[Event, None]) -> None:
        """Hold `entrant`'s events in its queue as they come; None ends them."""
        try:
            async with aclosing(source) as events:
                async for event in events:
                    entrant.events.put_nowait(event)
                    self._progress.set()
        finally:
            entrant.ended = True
            entrant.events.put_nowait(None)
            self._progress.set()

    async def commit(self) -> Entrant:
        """Wait until each first stage has `commit_tokens` tokens or has ended, commit to
        the best-scoring (ties to the pick) and cancel the others."""
        while not all(e.ready(self.commit_tokens) for e in self.entrants):
            self._progress.clear()
            await self._progress.wait()
        await asyncio.to_thread(self._score, await self._question_vector())
        self.winner, self.reason = self._pick()
        self.seconds = round(time.perf_counter() - self.started, 4)
        await self._cancel([e for e in self.entrants if e is not self.winner])
        return self.winner

    def _score(self, question: np.ndarray | None) -> None:
        """Score each text so far: flags and repetition from the text, relevance from one
        batch of embeddings (the question's was embedded while the stages began)."""
        texts = ["".join(e.run.text) for e in self.entrants]
        relevance = self._relevance(question, texts)
        for entrant, text, similar in zip(self.entrants, texts, relevance, strict=True):
            plain = quality.score_stage(self.question, text, {}, None, entrant.run.loop)
            flags = plain.flags
            if similar is not None and text.strip() and similar < quality.MIN_RELEVANCE:
                flags = (*flags, "off-topic")
            entrant.quality = replace(plain, relevance=similar, flags=flags)

    def _relevance(self, question: np.ndarray | None, texts: list[str]) -> list[float | None]:
        if self.embedder is None or question is None:
            return [None] * len(texts)
        try:
            vectors = self.embedder.embed(texts)
        except MiradorError as exc:
            log.warning("speculative candidates are judged without relevance: %s", exc)
            return [None] * len(texts)
        return [round(float(question @ v), 3) for v in vectors]

    def embed_question(self) -> None:
        """Embed the question in a worker thread while the first stages begin."""
        embedder = self.embedder
        if embedder is not None:
            self._question = asyncio.ensure_future(asyncio.to_thread(
                lambda: embedder.embed([self.question])[0]))
            self._question.add_done_callback(_unused)

    async def _question_vector(self) -> np.ndarray | None:
        if self._question is None:
            return None
        try:
            return await self._question
        except MiradorError as exc:  # no embedder: judged by the text alone
            log.warning("speculative candidates are judged without relevance: %s", exc)
            return None

    def _pick(self) -> tuple[Entrant, str]:
        def score(e: Entrant) -> float:
            return e.quality.score if e.quality is not None else float("-inf")

        def flawed(e: Entrant) -> bool:  # empty, looping, echoing or copying
            return e.quality is None or bool(e.quality.flags)

        pick, best = self.entrants[0], max(self.entrants, key=score)
        scores = ", ".join(f"{e.candidate.name} {score(e):.3f}" for e in self.entrants)
        sound = [e for e in self.entrants if not flawed(e)]
        if flawed(pick) and sound:  # a flawed first stage never wins over a sound one
            best = max(sound, key=score)
            return best, f"{best.candidate.name}'s first stage scored best of the sound " \
                         f"ones ({scores})"
        if best is pick or score(pick) >= score(best) - quality.WORSE_BY:
            return pick, f"the pick's first stage scored within {quality.WORSE_BY} of the " \
                         f"best ({scores})"
        return best, f"{best.candidate.name}'s first stage scored best ({scores})"

    async def _cancel(self, losers: list[Entrant]) -> None:
        for entrant in losers:
            if entrant.task is not None and not entrant.task.done():
                entrant.task.cancel()
        for entrant in losers:
            if entrant.task is not None:
                await asyncio.gather(entrant.task, return_exceptions=True)
            self.wasted += entrant.run.tokens

    async def stream(self) -> AsyncGenerator[Event, None]:
        """The committed first stage's events: those held, then the rest as they come."""
        while (event := await self.winner.events.get()) is not None:
            yield event

    async def aclose(self) -> None:
        """Cancel every first stage still running (the caller stopped reading)."""
        await self._cancel([e for e in self.entrants if e.task is not None
                            and not e.task.done()])

    def report(self, predicted: str) -> Speculation:
        return Speculation(candidates=[e.candidate.name for e in self.entrants],
                           predicted=predicted, committed=self.winner.candidate.name,
                           ran=True, reason=self.reason, wasted_tokens=self.wasted,
                           commit_seconds=self.seconds)


def _unused(future: asyncio.Future[np.ndarray]) -> None:
    """A question embedding nobody awaited (the race was closed first) is let go quietly;
    awaited, its failure is reported where it is read."""
    if not future.cancelled():
        future.exception()


@dataclass
class Speculative:
    """The outcome of planning with speculation: the committed plan, its personas, and
    the race whose winner's first stage is already running (None: nothing raced)."""

    plan: Plan
    personas: list[ResolvedPersona]
    race: Race | None = None
    report: Speculation | None = None
    recall: asyncio.Task[Recollection] | None = None  # started for the raced first stages

    def charged(self, done: Done) -> Done:
        """`done` with what speculation did, its wasted tokens' share of the joules."""
        if self.report is None:
            return done
        report = self.report
        if report.wasted_tokens and done.energy_j is not None:
            spent = report.wasted_tokens + done.tokens
            report = replace(report, wasted_joules=round(
                done.energy_j * report.wasted_tokens / spent, 3))
        return replace(done, speculation=report)

    async def aclose(self) -> None:
        if self.race is not None:
            await self.race.aclose()


def first_inputs(query: Query, candidate: Candidate, background: Recollection,
                 wish: Overrides, limits: Limits | None) -> Inputs:
    """A candidate's first stage's messages and options, as the orchestrator makes them."""
    stage, persona = candidate.plan.stages[0], candidate.first
    messages = prompts.stage_messages(query, persona, stage, {}, background, wish.system,
                                      first=True)
    options = prompts.request_options(persona.options.merged(prompts.stage_options(stage)),
                                      wish.options, tokens_left(wish.max_tokens, {}, limits))
    return messages, options


@dataclass(frozen=True)
class Speculator:
    """What speculative execution needs of the orchestrator."""

    planner: Planner
    manager: ModelManager
    runner: StageRunner
    recall: Recall
    config: SpeculationConfig
    embedder: Callable[[], Embedder]
    load: Callable[[], float] = load_per_core

    async def plan(self, query: Query, plan: Plan, personas: list[ResolvedPersona],
                   limits: Limits | None, model: str | None, wish: Overrides) -> Speculative:
        """Race the close candidates' first stages when allowed, and commit to one; else
        `plan` as it is (with why it did not race, when the chooser was unsure)."""
        if not self.config.enabled:  # off: nothing to weigh, nothing to report
            return Speculative(plan, personas)
        found = candidates(self.planner, query, plan, limits, model, self.config)
        if not found:
            return Speculative(plan, personas)
        names = [c.name for c in found]
        why_not = refusal(self.manager, found, limits, self.config, self.load)
        if why_not is not None:
            return Speculative(plan, personas, report=Speculation(
                names, names[0], names[0], ran=False, reason=why_not))
        recall = await self.recall.early(query)
        background = await self.recall.for_first_stage(recall)
        race = Race([Entrant(c, StageRun()) for c in found], query.text,
                    self.config.commit_tokens, self._embedder())
        race.start(self.runner, [first_inputs(query, c, background, wish, limits)
                                 for c in found], limits)
        race.embed_question()
        try:
            committed = (await race.commit()).candidate
        except BaseException:  # the caller stopped waiting: no first stage runs on
            await race.aclose()
            raise
        return Speculative(_noted(committed.plan, race.reason), list(committed.personas),
                           race, race.report(names[0]), recall)

    def _embedder(self) -> Embedder | None:
        """The embedder that scores the candidates, loading in the background."""
        from mirador.embeddings import BackgroundEmbedder

        try:
            embedder = self.embedder()
        except MiradorError as exc:
            log.warning("speculative candidates are judged without relevance: %s", exc)
            return None
        if isinstance(embedder, BackgroundEmbedder):
            embedder.start()
        return embedder


def _noted(plan: Plan, reason: str) -> Plan:
    """`plan` with its choice's reason telling of the commit."""
    if plan.choice is None:
        return plan
    chain = plan.chain or AUTO_CHAIN
    why = f"{plan.choice.reason}; speculative execution committed to {chain}: {reason}"
    return replace(plan, choice=replace(plan.choice, reason=why.lstrip("; ")))
