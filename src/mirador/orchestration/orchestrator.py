"""The progressive streaming orchestrator.

`Orchestrator.process(query)` acknowledges at once, then runs the planned
stages one after another, streaming each stage's tokens as they come. Each
later stage sees the query and what the earlier stages said. A stage that
fails or times out is reported and skipped; its partial text is kept and
marked. The answer is an error only when every stage failed.

Memory and learning plug in through narrow hooks (`hooks.py`): a `ContextSource`
whose recall starts at once and feeds the later stages (the first stage
never waits for it), and `AnswerSink`s told of every finished answer, in a task
the orchestrator owns that starts before `Done` is yielded (`recorded(answer_id)`
waits for it; `aclose` waits for all of them, then closes the hooks).

    async with Orchestrator(load_settings()) as orchestrator:
        async for event in orchestrator.process("What should I focus on today?"):
            print(event.to_dict())
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING

from mirador.catalog.manifest import Manifest, ModelEntry, ResolvedPersona, manifest_for
from mirador.errors import report_unexpected
from mirador.models.manager import ModelManager
from mirador.orchestration import prompts, quality
from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    Event,
    StageAnswer,
    StageEnd,
    StageStart,
    Token,
    final,
)
from mirador.orchestration.hooks import (
    AnswerRecord,
    AnswerSink,
    ChainChooser,
    Closable,
    ContextSource,
    Limits,
    LimitsSource,
    Plan,
    Query,
    RequestShaper,
)
from mirador.orchestration.outcome import done_event, judged
from mirador.orchestration.planning import Planner, tokens_left
from mirador.orchestration.recall import Recall, found
from mirador.orchestration.speculation import Prefill, first_messages, may_prefill, start_prefill
from mirador.orchestration.speculative_chains import Speculative, Speculator
from mirador.orchestration.stage_run import StageRun, StageRunner, stage_end
from mirador.orchestration.stages import ModelStage, Overrides
from mirador.settings import Settings
from mirador.toolspec import Tool

if TYPE_CHECKING:
    from mirador.embeddings import Embedder
    from mirador.orchestration.preload import Preloader

log = logging.getLogger("mirador")


class Orchestrator:
    """Plans a query's stages, runs them progressively and reports typed events."""

    def __init__(self, settings: Settings, manifest: Manifest | None = None,
                 manager: ModelManager | None = None, context: ContextSource | None = None,
                 sinks: Sequence[AnswerSink] = (), chooser: ChainChooser | None = None,
                 load_timeout: float = 300.0, embedder: Embedder | None = None,
                 limits: LimitsSource | None = None) -> None:
        self.settings = settings
        self.manifest = manifest or manifest_for(settings)
        self.manager = manager or ModelManager(settings, self.manifest)
        self.planner = Planner(settings, self.manifest, chooser)
        self.context = context
        self.sinks = list(sinks)
        self.limits = limits  # the energy profile in force, and the meter; none: no limits
        self.preloader: Preloader | None = None  # set by mirador.orchestration.preload.attach
        self.load_timeout = load_timeout
        self._embedder = embedder
        self._recording: dict[str, asyncio.Task[None]] = {}  # answer id -> its sinks' task
        self.tools: dict[str, Tool] = {}  # what personas' `tools:` name; set by mirador.compose
        self.shapers: list[RequestShaper] = []  # adjust each stage's request (Model DNA)

    @property
    def embedder(self) -> Embedder:
        """The embedder that judges stages: the one given, or the configured one, loaded late."""
        if self._embedder is None:
            from mirador.embeddings import load_embedder

            self._embedder = load_embedder(self.settings, start=False)
        return self._embedder

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait until every answer is recorded, close each hook once, then the models.

        Every hook is closed even when one fails; the first failure is raised after
        (a memory that could not be written says so rather than being lost)."""
        try:  # hooks that write in the background (memory) finish before the models go
            await self.recorded()
            outcomes = [await _closed(hook) for hook in self._hooks()]
            failures = [f for f in outcomes if f is not None]
            for later in failures[1:]:  # the first is raised; the others would be lost
                report_unexpected(log, "closing a hook also failed", later)
            if failures:
                raise failures[0]
        finally:
            await self.manager.aclose()

    def _hooks(self) -> list[Closable]:
        unique: dict[int, Closable] = {}
        for hook in (self.context, self.chooser, *self.sinks):
            if isinstance(hook, Closable):
                unique.setdefault(id(hook), hook)
        return list(unique.values())

    async def recorded(self, answer_id: str | None = None) -> None:
        """Wait until the sinks have been told of answer `answer_id` (of every answer in
        flight when None); at once if they already were. Rate an answer after this."""
        if answer_id is None:
            tasks = list(self._recording.values())
        else:
            tasks = [self._recording[answer_id]] if answer_id in self._recording else []
        if tasks:
            await asyncio.wait(tasks)

    # -- planning (planning.py) ------------------------------------------------

    @property
    def stages(self) -> list[ModelStage]:
        """The configured stages, in order."""
        return self.planner.stages

    @stages.setter
    def stages(self, stages: list[ModelStage]) -> None:
        self.planner.stages = stages

    @property
    def chooser(self) -> ChainChooser | None:
        """What picks a chain for each query (the learner), if anything does."""
        return self.planner.chooser

    @chooser.setter
    def chooser(self, chooser: ChainChooser | None) -> None:
        self.planner.chooser = chooser

    @property
    def routes(self) -> list[ChainChooser]:
        """Rules asked before the chooser (tool routing)."""
        return self.planner.routes

    def plan(self, query: str | Query, stages: Sequence[str | ModelStage] | None = None,
             chain: str | None = None) -> Plan:
        """Which stages run: the given ones, a chain's, or those the complexity calls for."""
        return self.planner.plan(query, stages, chain)

    def chain_stages(self, chain_id: str) -> list[ModelStage]:
        """A chain's steps as stages."""
        return self.planner.chain_stages(chain_id)

    def resolve(self, stage: ModelStage, force_model: str | None = None) -> ResolvedPersona:
        """The persona `stage` runs, on `force_model` when the caller named one."""
        return self.planner.resolve(stage, force_model)

    def model_entry(self, ref: str) -> ModelEntry:
        """A manifest model id, or a backend's own reference (`ollama:TAG`, a .gguf path)."""
        return self.planner.model_entry(ref)

    async def _plan_without_blocking(self, query: Query, stages: Sequence[str | ModelStage] | None,
                                     chain: str | None, model: str | None,
                                     limits: Limits | None, wish: Overrides
                                     ) -> tuple[Plan, Prefill | None]:
        """`plan`, with the chooser (which may embed the query) off the event loop.

        While the routes and the chooser think (a route may search the documents), the
        first configured stage's model starts loading:
        with the default manifest every persona shares it, so the wait overlaps; and,
        when the profile lets answers speculate, its prompt is read (`speculation.py`).
        """
        if stages or chain or not self.planner.thinks:
            return self.plan(query, stages, chain), None
        first = self.resolve(self.stages[0], model)
        self.manager.warm(first.model)
        guess = None
        if may_prefill(self.stages[0], first, limits, wish):
            guess = start_prefill(self.manager, first,
                                  first_messages(query, self.stages[0], first, wish))
        return await asyncio.to_thread(self.plan, query, stages, chain), guess

    # -- running -------------------------------------------------------------

    async def process(self, query: str | Query, *, stages: Sequence[str | ModelStage] | None = None,
                      model: str | None = None, chain: str | None = None,
                      overrides: Overrides | None = None,
                      remember: bool = True) -> AsyncIterator[Event]:
        """Answer `query` progressively, yielding typed events as they happen; `overrides`:
        what the caller asks of every stage (see `Overrides`).

        `remember=False` keeps the answer from the sinks (memory, learning): for
        chores such as a chat front end's title request, which nobody said."""
        started = time.perf_counter()
        wish = overrides or Overrides()
        q = query if isinstance(query, Query) else Query(text=query)
        limits, spent_before = self._limits()
        chosen = bool(stages or chain)
        planned, guess = await self._plan_without_blocking(q, stages, chain, model, limits, wish)
        plan = self.planner.allowed(planned, q, limits, chosen)
        personas = [self.resolve(s, model) for s in plan.stages]
        if guess is not None:  # the choice is made: was the prefilled prompt the right one?
            guess.settle(personas[0], first_messages(q, plan.stages[0], personas[0], wish))
        spec = (Speculative(plan, personas) if chosen else  # unsure: race the first stages
                await self._speculator().plan(q, plan, personas, limits, model, wish))
        plan, personas = spec.plan, spec.personas
        answer_id = uuid.uuid4().hex[:12]
        try:
            for persona in personas:  # first stage's model first; the rest load behind it
                self.manager.warm(persona.model)
            yield Ack(answer_id=answer_id, query=q.text, complexity=plan.complexity,
                      stages=[s.name for s in plan.stages], chain=plan.chain)
            ends: list[StageEnd] = []
            async with aclosing(self._stages(answer_id, q, plan, personas, wish, limits,
                                             started, ends, spec)) as events:
                async for event in events:
                    if not isinstance(event, Done):
                        yield event
                        continue
                    done = spec.charged(self._measured(event, limits, spent_before))
                    if guess is not None:
                        done = replace(done, speculated=await guess.describe(personas[0].id))
                    if remember:  # before `Done`: a caller may stop reading there
                        self._record(AnswerRecord(query=q, plan=plan, done=done,
                                                  stage_ends=ends))
                    yield done
        finally:
            await spec.aclose()

    def _runner(self) -> StageRunner:
        return StageRunner(self.manager, self.tools, self.shapers, self.load_timeout,
                           self.settings.config.tools.max_rounds)

    def _speculator(self) -> Speculator:
        return Speculator(self.planner, self.manager, self._runner(),
                          Recall(self.context, self.settings.config.memory.first_stage_wait),
                          self.settings.config.speculation, lambda: self.embedder)

    async def _stages(self, answer_id: str, q: Query, plan: Plan, personas: list[ResolvedPersona],
                      wish: Overrides, limits: Limits | None, started: float,
                      ends: list[StageEnd], spec: Speculative) -> AsyncGenerator[Event, None]:
        """Run the plan's stages in turn, each shown what the earlier ones said and what
        memory recalled (`recall.py`); end with the judged `Done`. A raced first stage
        (`spec.race`) is already running: its events are read, not started again."""
        several = len(plan.stages) > 1
        recall_for = Recall(self.context, self.settings.config.memory.first_stage_wait)
        runner = self._runner()
        race = spec.race
        recall = spec.recall if race is not None else await recall_for.early(q)
        judge = quality.Judge(q.text, self.embedder if several else None, len(plan.stages),
                              plan.prefer)
        answers: dict[str, StageAnswer] = {}
        first_token: float | None = None
        try:
            for index, (stage, persona) in enumerate(zip(plan.stages, personas, strict=True)):
                budget = tokens_left(wish.max_tokens, answers, limits)
                if budget == 0:
                    break  # the caller's token limit is spent: the answer ends here
                if index:
                    recall = recall or recall_for.start(q)
                background = (await found(recall) if index
                              else await recall_for.for_first_stage(recall))
                messages = prompts.stage_messages(q, persona, stage, answers, background,
                                                  wish.system, first=not index)
                options = prompts.request_options(
                    persona.options.merged(prompts.stage_options(stage)), wish.options, budget)
                run = (race.winner.run if race is not None and not index else
                       StageRun(copies=quality.CopyWatch({n: a.text for n, a in answers.items()})))
                yield StageStart(stage=stage.name, model=persona.model.id, persona=persona.id,
                                 confidence=stage.confidence, index=index)
                async with aclosing(race.stream() if race is not None and not index else
                                    runner.run(stage, persona, messages, options,
                                               run, limits)) as tokens:
                    async for event in tokens:
                        fresh = first_token is None and isinstance(event, Token)
                        if fresh:
                            first_token = time.perf_counter() - started
                            # recall starts at the first token, never before it
                            recall = recall or (recall_for.start(q) if several else None)
                        yield event
                        if fresh:  # the embedder may load now, behind the first token
                            judge.begin()
                if run.status != "ok":
                    yield ErrorEvent(stage=stage.name, model=persona.model.id,
                                     status=run.status, message=run.message)
                ends.append(stage_end(stage, persona, run))
                yield ends[-1]
                answers[stage.name] = StageAnswer(
                    text=run.answer_text, status=run.status, model=persona.model.id,
                    partial=run.status != "ok", tokens=run.tokens, error=run.message or None)
                judge.stage_ended(stage.name, run.answer_text, run.loop)
            yield await judged(done_event(answer_id, answers, started,
                                          first_token), judge)
        finally:
            judge.cancel()
            if recall is not None:
                recall.cancel()

    def _limits(self) -> tuple[Limits | None, float | None]:
        """The profile's limits for the answer starting now, and the meter's reading."""
        if self.limits is None:
            return None, None
        return self.limits.limits(), self.limits.joules()[0]

    def _measured(self, done: Done, limits: Limits | None, before: float | None) -> Done:
        """`done` with the profile it ran under and the joules it cost."""
        if self.limits is None or limits is None or before is None:
            return done
        total, method = self.limits.joules()
        return replace(done, profile=limits.profile, energy_j=round(max(0.0, total - before), 3),
                       energy_method=method)

    async def answer(self, query: str | Query, **kwargs: object) -> Done:
        """Run `process` to its `Done` event and return it, once the sinks have it."""
        done = await final(self.process(query, **kwargs))  # type: ignore[arg-type]
        await self.recorded(done.answer_id)
        return done

    # -- hooks ---------------------------------------------------------------

    def _record(self, record: AnswerRecord) -> None:
        """Tell the sinks of `record` in a task of the orchestrator's own."""
        answer_id = record.done.answer_id
        task = asyncio.create_task(self._tell_sinks(record), name=f"mirador-record-{answer_id}")
        self._recording[answer_id] = task
        task.add_done_callback(lambda _: self._recording.pop(answer_id, None))

    async def _tell_sinks(self, record: AnswerRecord) -> None:
        """Each sink in turn; one that fails is logged and the others are still told."""
        for sink in self.sinks:
            try:
                await sink.answer_finished(record)
            except Exception as exc:  # a sink's failure must not cost another sink its record
                report_unexpected(log, f"answer {record.done.answer_id} was not given to "
                                       f"{type(sink).__name__}", exc)


async def _closed(hook: Closable) -> Exception | None:
    """Close `hook`; what it raised is returned, so the other hooks still close."""
    try:
        await hook.aclose()
    except Exception as exc:
        return exc
    return None
