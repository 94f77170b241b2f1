"""One stage's run: its request, its streamed tokens under the stage's deadlines, and
the `StageEnd` that reports it.

The orchestrator decides which stages run and what each is shown; this module runs
one of them. A stage that fails, times out or falls into a loop ends here with a
status and a message; it never raises, so one stage never costs the others' answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from mirador.backends import ChatRequest, Finished, Message, TextPiece
from mirador.catalog.manifest import ResolvedPersona, SamplingOptions
from mirador.errors import MiradorError, report_unexpected
from mirador.models.manager import ModelManager
from mirador.models.slots import Admitted
from mirador.orchestration import quality
from mirador.orchestration.events import StageEnd, StageStatus, Token, ToolCall, ToolResult
from mirador.orchestration.hooks import Limits, RequestShaper
from mirador.orchestration.prompts import NOTED
from mirador.orchestration.stages import ModelStage
from mirador.orchestration.tool_loop import run_with_tools
from mirador.toolspec import Tool

log = logging.getLogger("mirador")


@dataclass
class StageRun:
    """What one stage produced so far, and how it ended."""

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

    def fail(self, status: StageStatus, message: str) -> None:
        self.status, self.message = status, message


@dataclass(frozen=True)
class StageRunner:
    """Runs stages on `manager`'s models, with the tools personas may call."""

    manager: ModelManager
    tools: Mapping[str, Tool]
    shapers: Sequence[RequestShaper] = ()
    load_timeout: float = 300.0
    max_tool_rounds: int = 4

    def request(self, stage: ModelStage, persona: ResolvedPersona,
                messages: tuple[Message, ...], options: SamplingOptions,
                limits: Limits | None) -> ChatRequest | str:
        """The stage's request, or why it cannot be made."""
        if stage.format is not None:  # a stop string (a newline) would cut JSON short
            options = options.model_copy(update={"stop": None})
        missing = [name for name in persona.tools if name not in self.tools]
        if missing:
            return (f"persona '{persona.id}' uses tool(s) {', '.join(missing)}, which this "
                    "orchestrator lacks; build it with mirador.create_orchestrator")
        request = ChatRequest(model=persona.model, messages=messages, options=options,
                              loras=persona.loras, format=stage.format,
                              tools=tuple(self.tools[name] for name in persona.tools),
                              speculative=persona.speculative if limits is None
                              or limits.speculate else None,
                              threads=limits.threads if limits is not None else None)
        for shaper in self.shapers:
            request = shaper.shape(stage.name, persona, request)
        return self.refused(request) or request

    def refused(self, request: ChatRequest) -> str | None:
        """Why the model's backend cannot honour `request`'s speculative decoding, if so."""
        backend = self.manager.backend(request.model.backend)
        if request.speculative is None or backend.capabilities.speculative:
            return None
        return (f"model '{request.model.id}' runs on the {backend.name} backend, which cannot "
                f"do speculative decoding ({request.speculative.method}); remove 'speculative' "
                "from the persona in ~/.mirador/manifest.yaml or give it a llama.cpp model")

    async def run(self, stage: ModelStage, persona: ResolvedPersona,
                  messages: tuple[Message, ...], options: SamplingOptions,
                  run: StageRun, limits: Limits | None = None
                  ) -> AsyncGenerator[Token | ToolCall | ToolResult, None]:
        """Stream the stage's tokens (and tool rounds) into `run`, yielding them."""
        request = self.request(stage, persona, messages, options, limits)
        if isinstance(request, str):
            run.fail("error", request)
            return
        if not await self._loaded(persona, run):
            return
        stream = (run_with_tools(self.manager.stream_chat, request, stage=stage.name,
                                 max_rounds=self.max_tool_rounds)
                  if request.tools else self.manager.stream_chat(request))
        lead = LeadTrim(NOTED) if _shown_noted(messages) else None
        try:
            async with aclosing(_within_deadlines(stream, stage, run,
                                                  bool(request.tools))) as events:
                async for event in events:
                    if isinstance(event, TextPiece):
                        if lead is not None:
                            event = TextPiece(lead.feed(event.text), event.tokens)
                            if not event.text:
                                continue
                        yield _token(event, stage, persona, run)
                        if run.loop is not None or run.copy is not None:
                            break  # a loop only grows, a copy adds nothing: end it here
                    elif isinstance(event, ToolCall | ToolResult):
                        yield event
                    elif isinstance(event, Finished):
                        run.status = "cancelled" if event.reason == "cancelled" else run.status
                        run.finished = event
                        run.tokens = event.completion_tokens or run.tokens
            if lead is not None and (held := lead.flush()):  # a short answer: "Not now."
                yield _token(TextPiece(held, 0), stage, persona, run)
        except TimeoutError:
            waited = "its first token" if run.ttft is None else "the whole stage"
            run.fail("timeout", f"stage {stage.name} ({persona.model.id}) timed out waiting "
                                f"for {waited}; its partial answer is kept")
        except MiradorError as exc:
            run.fail("error", f"stage {stage.name} failed: {exc}")
        except Exception as exc:  # not one of ours: a bug or a library's surprise, logged
            report_unexpected(log, f"stage {stage.name} ({persona.model.id}) failed", exc)
            # one stage's failure never costs the others' answer
            run.fail("error", f"stage {stage.name} failed: {type(exc).__name__}: {exc}")
        finally:
            await stream.aclose()  # type: ignore[union-attr]

    async def _loaded(self, persona: ResolvedPersona, run: StageRun) -> bool:
        """Load the persona's model within the load timeout; say so in `run` if not."""
        loading = time.perf_counter()
        try:
            async with asyncio.timeout(self.load_timeout):
                await self.manager.ensure_loaded(persona.model)
        except TimeoutError:
            run.fail("timeout", f"loading {persona.model.id} took too long")
            return False
        except MiradorError as exc:
            run.fail("error", str(exc))
            return False
        run.load_seconds = time.perf_counter() - loading
        return True


async def _within_deadlines(stream: AsyncIterator[object], stage: ModelStage,
                            run: StageRun, tools: bool) -> AsyncGenerator[object, None]:
    """`stream`'s events, each within the stage's deadline: the first token's until one
    came, then the whole stage's. Time in the manager's queue (until `Admitted`) and in
    a tool round is not the stage's; `run.seconds` is the time since admission."""
    begun = time.perf_counter()
    queued = True  # until Admitted: the manager bounds the wait (models.queue_wait)
    try:
        while True:
            # a tool round streams no tokens: a stage with tools has its whole timeout
            waiting = run.ttft is None and not tools
            limit = stage.first_token_deadline if waiting else stage.timeout
            remaining = begun + limit - time.perf_counter()
            try:
                async with asyncio.timeout(None if queued else max(remaining, 0.0)):
                    event = await anext(stream)
            except StopAsyncIteration:
                return
            if isinstance(event, Admitted):
                queued, begun = False, time.perf_counter()
                continue
            if isinstance(event, TextPiece) and not event.text:
                continue
            if isinstance(event, TextPiece) and run.ttft is None:
                run.ttft = time.perf_counter() - begun
            if isinstance(event, ToolCall | ToolResult):
                begun = time.perf_counter()  # each round gets its own first-token wait
            yield event
    finally:
        run.seconds = time.perf_counter() - begun


def _shown_noted(messages: Sequence[Message]) -> bool:
    """Whether the chat shows what the person told followed by the reply that repeats it
    (`prompts.NOTED`): a small model then sometimes begins its answer the same way."""
    return any(m.role == "assistant" and m.content.startswith(NOTED) for m in messages)


@dataclass
class LeadTrim:
    """Drops `lead` from the start of a stream of text: pieces are held back while they
    could still be it, and let through as they were once they cannot."""

    lead: str
    held: str = ""
    done: bool = False

    def feed(self, text: str) -> str:
        """What of `text` to show now."""
        if self.done:
            return text
        self.held += text
        start = self.held.lstrip()
        if start.startswith(self.lead):
            self.done, self.held = True, ""
            return start[len(self.lead):]
        if self.lead.startswith(start):
            return ""  # could still be the lead
        return self.flush()

    def flush(self) -> str:
        """What is held back (the stream has ended)."""
        self.done = True
        held, self.held = self.held, ""
        return held


def _token(piece: TextPiece, stage: ModelStage, persona: ResolvedPersona,
           run: StageRun) -> Token:
    run.text.append(piece.text)
    run.tokens += piece.tokens
    run.loop = run.watch.feed(piece.text)
    run.copy = run.copies.feed(piece.text)
    return Token(text=piece.text, stage=stage.name, model=persona.model.id,
                 confidence=stage.confidence)


def stage_end(stage: ModelStage, persona: ResolvedPersona, run: StageRun) -> StageEnd:
    """The `StageEnd` event that reports `run`."""
    seconds = run.seconds
    gen_time = seconds - (run.ttft or 0.0)
    rate = (run.tokens - 1) / gen_time if run.tokens > 1 and gen_time > 0 else None
    end = run.finished
    timings = end.timings if end else {}
    cause = run.loop or run.copy  # why the quality gate ended the stage early, if it did
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
                    reason=cause.describe() if cause else None)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
