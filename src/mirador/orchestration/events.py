"""The typed events of a progressive answer.

`Orchestrator.process` yields, in order: one `Ack` at once, then for each
stage a `StageStart`, its `Token`s (with `ToolCall`/`ToolResult` pairs where its
persona uses tools), an `ErrorEvent` if it failed or timed out,
and a `StageEnd`; finally one `Done`. Every event has a `type` and turns into
a JSON-ready dict with `to_dict()`: the CLI's `--json` lines and the server's
SSE events are exactly these dicts. `final(events)` drains a stream to its `Done`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from mirador.errors import MiradorError

StageStatus = Literal["ok", "timeout", "error", "cancelled"]


@dataclass(frozen=True)
class _Event:
    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class Ack(_Event):
    """Sent before any model work: the plan for this answer. When speculative execution
    runs (`Done.speculation`), it is sent at the commit and names the committed chain."""

    type: ClassVar[str] = "ack"
    answer_id: str
    query: str
    complexity: str
    stages: list[str]
    chain: str | None = None


@dataclass(frozen=True)
class StageStart(_Event):
    type: ClassVar[str] = "stage_start"
    stage: str
    model: str
    persona: str
    confidence: float
    index: int


@dataclass(frozen=True)
class Token(_Event):
    type: ClassVar[str] = "token"
    text: str
    stage: str
    model: str
    confidence: float


@dataclass(frozen=True)
class ErrorEvent(_Event):
    """A stage failed or timed out; the answer goes on with the next stage."""

    type: ClassVar[str] = "error"
    stage: str
    model: str
    status: StageStatus
    message: str


@dataclass(frozen=True)
class StageEnd(_Event):
    type: ClassVar[str] = "stage_end"
    stage: str
    model: str
    status: StageStatus
    tokens: int
    seconds: float
    ttft: float | None
    tokens_per_second: float | None
    partial: bool = False  # the text stopped early (timeout, error, cancel)
    finish_reason: Literal["stop", "length"] | None = None  # None: the model did not finish
    prompt_tokens: int | None = None  # by the model's own tokenizer, where the backend says
    load_seconds: float = 0.0  # loading the model for this stage
    prompt_seconds: float | None = None  # evaluating the prompt, as the backend measured it
    eval_seconds: float | None = None  # generating, as the backend measured it
    reason: str | None = None  # why the stage ended early when it was not cut short


@dataclass(frozen=True)
class ToolCall(_Event):
    """A stage's model asked for a tool (`round` counts from 1 within the stage)."""

    type: ClassVar[str] = "tool_call"
    stage: str
    model: str
    tool: str
    arguments: dict[str, Any]
    round: int = 1


@dataclass(frozen=True)
class ToolResult(_Event):
    """What the tool returned to the model (`ok` False: an error the model is shown)."""

    type: ClassVar[str] = "tool_result"
    stage: str
    tool: str
    ok: bool
    text: str
    seconds: float = 0.0
    round: int = 1


@dataclass(frozen=True)
class StageAnswer:
    text: str
    status: StageStatus
    model: str
    partial: bool
    tokens: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Speculation:
    """What speculative execution did for an answer whose chain the chooser was unsure of
    (see `mirador.orchestration.speculative_chains`).

    `ran` False: the candidates were close but speculation was not allowed (`reason`
    says why) and the predicted chain ran alone. `wasted_joules` is the answer's joules
    in proportion to the discarded tokens (None without an energy meter)."""

    candidates: list[str]  # the chains whose first stages ran (or would have), pick first
    predicted: str  # the chooser's pick
    committed: str  # the chain that answered
    ran: bool
    reason: str
    wasted_tokens: int = 0
    wasted_joules: float | None = None
    commit_seconds: float | None = None  # from the start of the first stages to the commit


@dataclass(frozen=True)
class Done(_Event):
    """The end: each stage's answer, the final answer (the best stage's) and the totals.

    `quality` has each stage's relevance to the question, repetition and flags
    (see `mirador.orchestration.quality`); `chosen_because` says why
    `final_stage` was picked, and `set_aside` names later stages passed over.
    """

    type: ClassVar[str] = "done"
    answer_id: str
    status: Literal["ok", "partial", "error"]
    answer: str
    final_stage: str | None
    answers: dict[str, StageAnswer] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    ttft: float | None = None
    error: str | None = None
    chosen_because: str | None = None  # why `final_stage` gave the answer
    set_aside: list[str] = field(default_factory=list)  # later stages passed over
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)  # each stage's scores
    profile: str | None = None  # the energy profile the answer ran under
    energy_j: float | None = None  # joules the answer cost (see energy_method)
    energy_method: str | None = None  # "rapl" or "cpu-time estimate"
    speculated: str | None = None  # what speculative prefill did (orchestration/speculation.py)
    speculation: Speculation | None = None  # speculative execution (speculative_chains.py)


Event = Ack | StageStart | Token | ToolCall | ToolResult | ErrorEvent | StageEnd | Done


async def final(events: AsyncIterable[Event],
                each: Callable[[Event], object] | None = None) -> Done:
    """Read `events` to the end (handing each to `each`, e.g. a renderer's `show`) and
    return their `Done`: the non-streaming answer."""
    done: Done | None = None
    stream = aiter(events)
    try:
        async for event in stream:  # to the end, so the stream finishes rather than lingers
            if each is not None:
                each(event)
            done = event if isinstance(event, Done) else done
    finally:  # `each` failed (a closed pipe, Ctrl-C): the stages' streams end here, releasing
        close = getattr(stream, "aclose", None)  # their models, or closing them would wait
        if close is not None:
            await close()
    if done is None:
        raise MiradorError("the answer ended without a result; see the log for why")
    return done
