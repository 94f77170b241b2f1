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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from mirador.backends import ChatRequest, Finished, Message, TextPiece, entry_for_reference
from mirador.catalog.manifest import (
    AUTO_CHAIN,
    Manifest,
    ModelEntry,
    ResolvedPersona,
    SamplingOptions,
    manifest_for,
)
from mirador.errors import ConfigError, MiradorError, report_unexpected
from mirador.models.manager import ModelManager
from mirador.models.slots import Admitted
from mirador.orchestration import prompts, quality
from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    Event,
    StageAnswer,
    StageEnd,
    StageStart,
    StageStatus,
    Token,
    ToolCall,
    ToolResult,
    final,
)
from mirador.orchestration.hooks import (
    AnswerRecord,
    AnswerSink,
    ChainChoice,
    ChainChooser,
    Closable,
    ContextSource,
    Limits,
    LimitsSource,
    Plan,
    Query,
    Recollection,
    RequestShaper,
)
from mirador.orchestration.routing import classify, speaks_of_me
from mirador.orchestration.speculation import Prefill, first_messages, may_prefill, start_prefill
from mirador.orchestration.stages import ModelStage, Overrides, select_stages
from mirador.orchestration.tool_loop import run_with_tools
from mirador.settings import Settings
from mirador.toolspec import Tool

if TYPE_CHECKING:
    from mirador.embeddings import Embedder
    from mirador.orchestration.preload import Preloader

log = logging.getLogger("mirador")
NOTHING_RECALLED = Recollection()


@dataclass
class _StageRun:
    text: list[str] = field(default_factory=list)
    tokens: int = 0
    ttft: float | None = None
    status: StageStatus = "ok"
    message: str = ""
    seconds: float = 0.0
    finished: Finished | None = None  # what the backend reported at the end
    load_seconds: float = 0.0
    watch: quality.LoopWatch = field(default_factory=quality.LoopWatch)
    loop: quality.Loop | None = None
    copies: quality.CopyWatch = field(default_factory=lambda: quality.CopyWatch({}))
    copy: quality.Copy | None = None  # the earlier stage this one began to copy

    @property
    def answer_text(self) -> str:
        """The stage's text, without the loop it fell into."""
        text = "".join(self.text)
        return quality.trim_loop(text, self.loop) if self.loop else text.strip()


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
        self.stages = [ModelStage.from_config(s) for s in settings.config.stages]
        self.context = context
        self.sinks = list(sinks)
        self.chooser = chooser
        self.limits = limits  # the energy profile in force, and the meter; none: no limits
        self.preloader: Preloader | None = None  # set by mirador.orchestration.preload.attach
        self.load_timeout = load_timeout
        self._embedder = embedder
        self._recording: dict[str, asyncio.Task[None]] = {}  # answer id -> its sinks' task
        self.tools: dict[str, Tool] = {}  # what personas' `tools:` name; set by mirador.compose
        self.routes: list[ChainChooser] = []  # rules asked before the chooser (tool routing)
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

    # -- planning ------------------------------------------------------------

    def plan(self, query: str | Query, stages: Sequence[str | ModelStage] | None = None,
             chain: str | None = None) -> Plan:
        """Which stages run: the given ones, a chain's, or those the complexity calls for."""
        q = query if isinstance(query, Query) else Query(text=query)
        if chain:
            return Plan("chain", tuple(self.chain_stages(chain)), chain=chain)
        if stages:
            chosen = [s for s in stages if isinstance(s, ModelStage)]
            names = [s for s in stages if isinstance(s, str)]
            if names and chosen:
                raise ConfigError("give stages either all as names or all as ModelStage")
            picked = chosen or select_stages(self.stages, names)
            return Plan(complexity="custom", stages=tuple(picked))
        choice = self._routed(q)
        if choice is not None and choice.chain != AUTO_CHAIN:
            return Plan("chain", tuple(self.chain_stages(choice.chain)), chain=choice.chain,
                        choice=choice)
        route = classify(q.text)
        names = self.settings.config.routing.stages_for(route.complexity)
        return Plan(route.complexity, tuple(select_stages(self.stages, names)), route,
                    chain=AUTO_CHAIN if choice else None, choice=choice)

    def _routed(self, query: Query) -> ChainChoice | None:
        """The first rule in `routes` that claims the query, else the chooser's pick."""
        for rule in self.routes:
            choice = rule.choose(query)
            if choice is not None:
                return choice
        return self.chooser.choose(query) if self.chooser else None

    async def _plan_without_blocking(self, query: Query, stages: Sequence[str | ModelStage] | None,
                                     chain: str | None, model: str | None,
                                     limits: Limits | None = None, wish: Overrides | None = None
                                     ) -> tuple[Plan, Prefill | None]:
        """`plan`, with the chooser (which may embed the query) off the event loop.

        While the routes and the chooser think (a route may search the documents), the
        first configured stage's model starts loading:
        with the default manifest every persona shares it, so the wait overlaps; and,
        when the profile lets answers speculate, its prompt is read (`speculation.py`).
        """
        if stages or chain or (self.chooser is None and not self.routes):
            return self.plan(query, stages, chain), None
        first = self.resolve(self.stages[0], model)
        self.manager.warm(first.model)
        guess = None
        if may_prefill(self.stages[0], first, limits, wish or Overrides()):
            guess = start_prefill(self.manager, first, first_messages(
                query, self.stages[0], first, wish or Overrides()))
        return await asyncio.to_thread(self.plan, query, stages, chain), guess

    def chain_stages(self, chain_id: str) -> list[ModelStage]:
        """A chain's steps as stages, confidence rising from the first stage's to the last's."""
        steps = self.manifest.chain(chain_id).steps
        first, last = self.stages[0], self.stages[-1]
        span = len(steps) - 1 or 1
        return [ModelStage(name=step, persona=step,
                           confidence=round(first.confidence
                                            + (last.confidence - first.confidence) * i / span, 3),
                           timeout=(first if i == 0 else last).timeout,
                           first_token_timeout=(first if i == 0 else last).first_token_timeout)
                for i, step in enumerate(steps)]

    def resolve(self, stage: ModelStage, force_model: str | None = None) -> ResolvedPersona:
        persona = self.manifest.resolve(stage.persona)
        if force_model:
            persona = persona.model_copy(update={"model": self.model_entry(force_model)})
        return persona

    def model_entry(self, ref: str) -> ModelEntry:
        """A manifest model id, or a backend's own reference (`ollama:TAG`, a .gguf path)."""
        return entry_for_reference(ref) or self.manifest.model(ref)

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
        plan = _within(self._allowed(planned, q, limits, chosen), limits, chosen)
        personas = [self.resolve(s, model) for s in plan.stages]
        if guess is not None:  # the choice is made: was the prefilled prompt the right one?
            guess.settle(personas[0], first_messages(q, plan.stages[0], personas[0], wish))
        answer_id = uuid.uuid4().hex[:12]
        for persona in personas:  # first stage's model first; the rest load behind it
            self.manager.warm(persona.model)
        yield Ack(answer_id=answer_id, query=q.text, complexity=plan.complexity,
                  stages=[s.name for s in plan.stages], chain=plan.chain)
        # Recall starts at the first token, never before it, unless the question speaks of
        # the person: then what they told Mirador may be the answer, and the first stage
        # waits for it a little (memory.first_stage_wait).
        recall = await self._early_recall(q)
        judge = quality.Judge(q.text, self.embedder if len(plan.stages) > 1 else None,
                              len(plan.stages))
        answers: dict[str, StageAnswer] = {}
        ends: list[StageEnd] = []
        first_token: float | None = None
        try:
            for index, (stage, persona) in enumerate(zip(plan.stages, personas, strict=True)):
                budget = _capped(_left(wish.max_tokens, answers), limits)
                if budget == 0:
                    break  # the caller's token limit is spent: the answer ends here
                if index:
                    recall = recall or self._start_recall(q, len(plan.stages))
                background = (await self._background(recall) if index else
                              await self._first_background(recall))
                messages = prompts.stage_messages(q, persona, stage, answers, background,
                                                  wish.system, first=not index)
                options = prompts.request_options(
                    persona.options.merged(prompts.stage_options(stage)), wish.options, budget)
                run = _StageRun(copies=quality.CopyWatch({n: a.text for n, a in answers.items()}))
                yield StageStart(stage=stage.name, model=persona.model.id, persona=persona.id,
                                 confidence=stage.confidence, index=index)
                async with aclosing(self._run_stage(stage, persona, messages, options,
                                                    run, limits)) as tokens:
                    async for event in tokens:
                        fresh = first_token is None and isinstance(event, Token)
                        if fresh:
                            first_token = time.perf_counter() - started
                            recall = recall or self._start_recall(q, len(plan.stages))
                        yield event
                        if fresh:  # the embedder may load now, behind the first token
                            judge.begin()
                if run.status != "ok":
                    yield ErrorEvent(stage=stage.name, model=persona.model.id,
                                     status=run.status, message=run.message)
                ends.append(self._stage_end(stage, persona, run))
                yield ends[-1]
                answers[stage.name] = StageAnswer(
                    text=run.answer_text, status=run.status, model=persona.model.id,
                    partial=run.status != "ok", tokens=run.tokens, error=run.message or None)
                judge.stage_ended(stage.name, run.answer_text, run.loop)
            done = await _judged(_done(answer_id, answers, started, first_token), judge)
            done = self._measured(done, limits, spent_before)
            if guess is not None:
                done = replace(done, speculated=await guess.describe(personas[0].id))
        finally:
            judge.cancel()
            if recall is not None:
                recall.cancel()
        if remember:  # before `Done`: a caller may stop reading there
            self._record(AnswerRecord(query=q, plan=plan, done=done, stage_ends=ends))
        yield done

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

    async def _run_stage(self, stage: ModelStage, persona: ResolvedPersona,
                         messages: tuple[Message, ...], options: SamplingOptions,
                         run: _StageRun, limits: Limits | None = None
                         ) -> AsyncGenerator[Token | ToolCall | ToolResult, None]:
        if stage.format is not None:  # a stop string (a newline) would cut JSON short
            options = options.model_copy(update={"stop": None})
        missing = [name for name in persona.tools if name not in self.tools]
        if missing:
            run.status, run.message = "error", (
                f"persona '{persona.id}' uses tool(s) {', '.join(missing)}, which this "
                "orchestrator lacks; build it with mirador.create_orchestrator")
            return
        request = ChatRequest(model=persona.model, messages=messages, options=options,
                              loras=persona.loras, format=stage.format,
                              tools=tuple(self.tools[name] for name in persona.tools),
                              speculative=persona.speculative if limits is None
                              or limits.speculate else None,
                              threads=limits.threads if limits is not None else None)
        for shaper in self.shapers:
            request = shaper.shape(stage.name, persona, request)
        loading = time.perf_counter()
        try:
            async with asyncio.timeout(self.load_timeout):
                await self.manager.ensure_loaded(persona.model)
            run.load_seconds = time.perf_counter() - loading
        except TimeoutError:
            run.status, run.message = "timeout", f"loading {persona.model.id} took too long"
            return
        except MiradorError as exc:
            run.status, run.message = "error", str(exc)
            return
        refused = self._refused(request)
        if refused:
            run.status, run.message = "error", refused
            return
        begun = time.perf_counter()
        run.message = ""
        stream = (run_with_tools(self.manager.stream_chat, request, stage=stage.name,
                                 max_rounds=self.settings.config.tools.max_rounds)
                  if request.tools else self.manager.stream_chat(request))
        queued = True  # until Admitted: the manager bounds the wait (models.queue_wait)
        try:
            while True:
                # a tool round streams no tokens: a stage with tools has its whole timeout
                waiting = run.ttft is None and not request.tools
                limit = stage.first_token_deadline if waiting else stage.timeout
                remaining = begun + limit - time.perf_counter()
                try:
                    async with asyncio.timeout(None if queued else max(remaining, 0.0)):
                        event = await anext(stream)
                except StopAsyncIteration:
                    break
                if isinstance(event, Admitted):  # time in the queue is not the stage's
                    queued, begun = False, time.perf_counter()
                elif isinstance(event, TextPiece) and event.text:
                    if run.ttft is None:
                        run.ttft = time.perf_counter() - begun
                    run.text.append(event.text)
                    run.tokens += event.tokens
                    run.loop = run.watch.feed(event.text)
                    run.copy = run.copies.feed(event.text)
                    yield Token(text=event.text, stage=stage.name, model=persona.model.id,
                                confidence=stage.confidence)
                    if run.loop is not None or run.copy is not None:
                        break  # a loop only grows, a copy adds nothing: end the stage here
                elif isinstance(event, ToolCall | ToolResult):
                    yield event
                    begun = time.perf_counter()  # each round gets its own first-token wait
                elif isinstance(event, Finished):
                    run.status = "cancelled" if event.reason == "cancelled" else run.status
                    run.finished = event
                    run.tokens = event.completion_tokens or run.tokens
        except TimeoutError:
            waited = "its first token" if run.ttft is None else "the whole stage"
            run.status = "timeout"
            run.message = (f"stage {stage.name} ({persona.model.id}) timed out waiting for "
                           f"{waited}; its partial answer is kept")
        except MiradorError as exc:
            run.status, run.message = "error", f"stage {stage.name} failed: {exc}"
        except Exception as exc:  # not one of ours: a bug or a library's surprise, logged
            report_unexpected(log, f"stage {stage.name} ({persona.model.id}) failed", exc)
            run.status = "error"  # one stage's failure never costs the others' answer
            run.message = f"stage {stage.name} failed: {type(exc).__name__}: {exc}"
        finally:
            run.seconds = time.perf_counter() - begun
            await stream.aclose()  # type: ignore[union-attr]

    def _refused(self, request: ChatRequest) -> str | None:
        """Why the model's backend cannot honour `request`'s speculative decoding, if so."""
        backend = self.manager.backend(request.model.backend)
        if request.speculative is None or backend.capabilities.speculative:
            return None
        return (f"model '{request.model.id}' runs on the {backend.name} backend, which cannot "
                f"do speculative decoding ({request.speculative.method}); remove 'speculative' "
                "from the persona in ~/.mirador/manifest.yaml or give it a llama.cpp model")

    def _allowed(self, plan: Plan, query: Query, limits: Limits | None, chosen: bool) -> Plan:
        """The plan, or the energy profile's first allowed chain when the learner or routing
        picked one the profile does not allow (the person's own choice stands)."""
        picked = plan.chain or AUTO_CHAIN
        if limits is None or limits.chains is None or chosen or limits.allows(picked):
            return plan
        fallback = limits.chains[0]
        log.info("profile %s does not allow chain %s; %s answers", limits.profile, picked,
                 fallback)
        if fallback != AUTO_CHAIN:
            return Plan("chain", tuple(self.chain_stages(fallback)), chain=fallback)
        route = classify(query.text)
        names = self.settings.config.routing.stages_for(route.complexity)
        return Plan(route.complexity, tuple(select_stages(self.stages, names)), route,
                    chain=AUTO_CHAIN)

    @staticmethod
    def _stage_end(stage: ModelStage, persona: ResolvedPersona, run: _StageRun) -> StageEnd:
        seconds = run.seconds
        gen_time = seconds - (run.ttft or 0.0)
        rate = (run.tokens - 1) / gen_time if run.tokens > 1 and gen_time > 0 else None
        end = run.finished
        timings = end.timings if end else {}
        return StageEnd(stage=stage.name, model=persona.model.id, status=run.status,
                        tokens=run.tokens, seconds=round(seconds, 4),
                        ttft=None if run.ttft is None else round(run.ttft, 4),
                        tokens_per_second=None if rate is None else round(rate, 2),
                        partial=run.status != "ok",
                        finish_reason=end.reason if end and end.reason != "cancelled" else None,
                        prompt_tokens=end.prompt_tokens or None if end else None,
                        load_seconds=round(run.load_seconds, 4),
                        prompt_seconds=_rounded(timings.get("prompt_seconds")),
                        eval_seconds=_rounded(timings.get("eval_seconds")),
                        reason=_early_end(run))

    # -- hooks ---------------------------------------------------------------

    def _start_recall(self, query: Query, stage_count: int) -> asyncio.Task[Recollection] | None:
        if self.context is None or stage_count < 2:
            return None
        task = asyncio.ensure_future(self.context.context_for(query))
        task.add_done_callback(_report_recall)  # whether or not a stage waits for it
        return task

    async def _early_recall(self, query: Query) -> asyncio.Task[Recollection] | None:
        """Recall started before the first stage, for a question that speaks of the person
        when some memory shares a word with it."""
        if (self.context is None or self.settings.config.memory.first_stage_wait <= 0
                or not speaks_of_me(query.text)):
            return None
        try:
            if not await self.context.might_know(query):
                return None
        except Exception as exc:  # memory must not cost the answer: recall reports it later
            report_unexpected(log, "looking for words the question shares with memory", exc)
            return None
        return self._start_recall(query, stage_count=2)  # even a one-stage answer uses it

    async def _first_background(self, recall: asyncio.Task[Recollection] | None
                                ) -> Recollection:
        """What the first stage is shown: the early recall if it is ready within
        memory.first_stage_wait; else nothing (the later stages still get it)."""
        if recall is None:
            return NOTHING_RECALLED
        await asyncio.wait({recall}, timeout=self.settings.config.memory.first_stage_wait)
        return await self._background(recall) if recall.done() else NOTHING_RECALLED

    @staticmethod
    async def _background(recall: asyncio.Task[Recollection] | None) -> Recollection:
        if recall is None:
            return NOTHING_RECALLED
        try:
            return await asyncio.shield(recall)
        except Exception:  # reported by _report_recall; memory must not cost the answer
            return NOTHING_RECALLED

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


def _report_recall(task: asyncio.Task[Recollection]) -> None:
    """Say why background for the later stages could not be recalled (they go on without)."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    assert exc is not None
    if isinstance(exc, MiradorError):
        log.warning("memory could not be recalled for this answer: %s", exc)
    else:
        report_unexpected(log, "recalling memory for this answer", exc)


def _left(limit: int | None, answers: dict[str, StageAnswer]) -> int | None:
    """Tokens the answer may still generate under the caller's `limit` (None: no limit)."""
    if limit is None:
        return None
    return max(0, limit - sum(a.tokens for a in answers.values()))


def _within(plan: Plan, limits: Limits | None, chosen: bool) -> Plan:
    """The plan the energy profile allows: only its first stage when deeper stages are
    off, unless the person chose the stages or the chain themselves."""
    if limits is None or limits.deeper_stages or chosen or len(plan.stages) <= 1:
        return plan
    return replace(plan, stages=plan.stages[:1])


def _capped(budget: int | None, limits: Limits | None) -> int | None:
    """The tokens a stage may generate: what the answer has left, and the profile's cap."""
    cap = limits.max_tokens if limits is not None else None
    if cap is None or budget is None:
        return budget if cap is None else cap
    return min(budget, cap)


def _early_end(run: _StageRun) -> str | None:
    """Why the quality gate ended a stage early, if it did."""
    cause = run.loop or run.copy
    return cause.describe() if cause else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _done(answer_id: str, answers: dict[str, StageAnswer], started: float,
          first_token: float | None) -> Done:
    seconds = round(time.perf_counter() - started, 4)
    ttft = None if first_token is None else round(first_token, 4)
    ok = [name for name, a in answers.items() if a.status == "ok" and a.text]
    usable = ok or [name for name, a in answers.items() if a.text]
    if not usable:
        reasons = "; ".join(f"{n}: {a.error or a.status}" for n, a in answers.items())
        return Done(answer_id=answer_id, status="error", answer="", final_stage=None,
                    answers=answers, seconds=seconds, ttft=ttft,
                    error=f"every stage failed ({reasons or 'no stages ran'}); check that the "
                          "models load ('mirador models') and that any server they need is running")
    final = usable[-1]
    status: Literal["ok", "partial"] = "ok" if len(ok) == len(answers) else "partial"
    return Done(answer_id=answer_id, status=status, answer=answers[final].text,
                final_stage=final, answers=answers, seconds=seconds, ttft=ttft,
                tokens=sum(a.tokens for a in answers.values()))


async def _judged(done: Done, judge: quality.Judge) -> Done:
    """`done` with the best stage's text as the answer, and every stage's scores."""
    if done.status == "error":
        return done
    ok = [name for name, a in done.answers.items() if a.status == "ok" and a.text]
    choice, scores = await judge.verdict(ok or [n for n, a in done.answers.items() if a.text])
    report = {name: {"relevance": s.relevance, "repetition": s.repetition,
                     "flags": list(s.flags)} for name, s in scores.items()}
    if choice is None:
        return replace(done, quality=report)
    return replace(done, answer=done.answers[choice.stage].text, final_stage=choice.stage,
                   chosen_because=choice.reason, set_aside=list(choice.set_aside),
                   quality=report)
