"""Running a client-tools request: one stage, as the orchestrator's typed events.

The stage's backend stream becomes `Ack`, `StageStart`, `Token`s and `ToolCall`s
(the client's calls: reported, never run), `StageEnd` and `Done`, so the Ollama and
OpenAI routes read it like any answer. A forced call (llama.cpp's grammar) is read
whole and parsed into its `ToolCall`. Nothing is remembered: the client holds the
conversation, tool results and all.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mirador.backends import Finished, TextPiece, ToolCallRequest, tool_calls
from mirador.errors import MiradorError
from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    Event,
    StageAnswer,
    StageEnd,
    StageStart,
    Token,
    ToolCall,
)
from mirador.orchestration.orchestrator import Orchestrator
from mirador.server.client_tools import ToolTurn

COMPLEXITY = "tools"  # the Ack's complexity for a client-tools answer


@dataclass
class _Run:
    text: list[str] = field(default_factory=list)
    calls: int = 0
    tokens: int = 0
    ttft: float | None = None
    finished: Finished | None = None
    status: str = "ok"
    message: str = ""


async def run(orchestrator: Orchestrator, turn: ToolTurn) -> AsyncIterator[Event]:
    """The events of `turn` (see the module)."""
    started = time.perf_counter()
    stage, model = turn.stage, turn.persona.model.id
    answer_id = uuid.uuid4().hex[:12]
    yield Ack(answer_id=answer_id, query=turn.question, complexity=COMPLEXITY,
              stages=[stage.name])
    yield StageStart(stage=stage.name, model=model, persona=turn.persona.id,
                     confidence=stage.confidence, index=0)
    state = _Run()
    try:
        async with asyncio.timeout(orchestrator.load_timeout + stage.timeout):
            await orchestrator.manager.ensure_loaded(turn.persona.model)
            async for event in _events(orchestrator, turn, state, started):
                yield event
    except TimeoutError:
        state.status, state.message = "timeout", f"stage {stage.name} ({model}) timed out"
    except MiradorError as exc:
        state.status, state.message = "error", f"stage {stage.name} failed: {exc}"
    if state.status != "ok":
        yield ErrorEvent(stage=stage.name, model=model, status=state.status,  # type: ignore[arg-type]
                         message=state.message)
    yield _end(turn, state, started)
    yield _done(turn, state, answer_id, started)


async def _events(orchestrator: Orchestrator, turn: ToolTurn, state: _Run,
                  started: float) -> AsyncIterator[Event]:
    stage, model = turn.stage.name, turn.persona.model.id
    async for event in _backend(orchestrator, turn):
        if isinstance(event, ToolCallRequest):
            state.calls += 1
            yield ToolCall(stage=stage, model=model, tool=event.name,
                           arguments=event.arguments, round=state.calls)
        elif isinstance(event, TextPiece) and event.text:
            state.ttft = state.ttft or time.perf_counter() - started
            state.text.append(event.text)
            state.tokens += event.tokens
            yield Token(text=event.text, stage=stage, model=model,
                        confidence=turn.stage.confidence)
        elif isinstance(event, Finished):
            state.finished = event


async def _backend(orchestrator: Orchestrator, turn: ToolTurn
                   ) -> AsyncIterator[TextPiece | ToolCallRequest | Finished]:
    """The backend's events; a forced call's JSON read whole and parsed into its call."""
    chosen: list[str] = []
    stream = orchestrator.manager.stream_chat(turn.request)
    try:
        async for event in stream:
            if turn.forced and isinstance(event, TextPiece):
                chosen.append(event.text)
                continue
            if turn.forced and isinstance(event, Finished):
                yield tool_calls.parse_choice("".join(chosen))
            if isinstance(event, TextPiece | ToolCallRequest | Finished):
                yield event
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _end(turn: ToolTurn, state: _Run, started: float) -> StageEnd:
    end = state.finished
    reason = end.reason if end and end.reason != "cancelled" else None
    timings = end.timings if end else {}
    return StageEnd(stage=turn.stage.name, model=turn.persona.model.id,
                    status=state.status, tokens=end.completion_tokens if end else state.tokens,  # type: ignore[arg-type]
                    seconds=round(time.perf_counter() - started, 4),
                    ttft=None if state.ttft is None else round(state.ttft, 4),
                    tokens_per_second=None, partial=state.status != "ok",
                    finish_reason=reason,
                    prompt_tokens=(end.prompt_tokens or None) if end else None,
                    prompt_seconds=timings.get("prompt_seconds"),
                    eval_seconds=timings.get("eval_seconds"))


def _done(turn: ToolTurn, state: _Run, answer_id: str, started: float) -> Done:
    text = "".join(state.text)
    answered = state.status == "ok" or bool(text) or state.calls > 0
    answer = StageAnswer(text=text, status=state.status, model=turn.persona.model.id,  # type: ignore[arg-type]
                         partial=state.status != "ok", tokens=state.tokens,
                         error=state.message or None)
    return Done(answer_id=answer_id, status="ok" if state.status == "ok" else
                ("partial" if answered else "error"), answer=text,
                final_stage=turn.stage.name, answers={turn.stage.name: answer},
                seconds=round(time.perf_counter() - started, 4), tokens=state.tokens,
                ttft=state.ttft, error=state.message or None)
