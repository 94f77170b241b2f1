"""Background tasks of chat front ends: one quick stage, nothing remembered.

Open WebUI asks the chat's model for a title, tags and follow-up questions after every
answer (and, when turned on, search queries and autocompletion), in prompts that begin
`### Task:` and ask for a JSON object. Run as a staged answer, each would take as long
as the answer itself and be stored in memory as if the person had said it. Here a task,
recognised by that opening or sent to the `mirador:task` model, is one stage on the
target's first model, without a persona: no chain, no memory write, no learning record.

Known tasks are recognised by the JSON key their prompt asks for, and answered in JSON
of a bounded schema (a few short strings), so the reply parses and stays short:

    key          task                      reply
    title        chat title                {"title": "..."}          (60 characters at most)
    tags         chat tags                 {"tags": [...]}           (1 to 4 tags)
    follow_ups   follow-up suggestions     {"follow_ups": [...]}     (1 to 3 questions)
    queries      search/retrieval queries  {"queries": [...]}        (0 to 3 queries)
    text         autocompletion            {"text": "..."}

Any other `### Task:` prompt gets a short free answer (JSON if it asks for JSON). A
`format` or `response_format` the client sent wins over the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mirador.backends import ResponseFormat
from mirador.orchestration.orchestrator import Orchestrator, Query
from mirador.orchestration.stages import ModelStage
from mirador.server import structured
from mirador.server.compat import Target
from mirador.server.options import Sampling
from mirador.server.runtime import AnswerRequest

MARKER = "### Task:"
TASK_MODEL = "task"  # mirador:task
MAX_TOKENS = 160  # a backstop: the schemas bound the replies well below it
TIMEOUT = 60.0  # generous: the model may still be loading when the first task comes
_KEY = re.compile(r'\{\s*"(\w+)"\s*:')


def _strings(max_items: int, length: int, min_items: int = 1) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "maxLength": length},
            "minItems": min_items, "maxItems": max_items}


def _object(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: value}, "required": [key]}


@dataclass(frozen=True)
class TaskKind:
    """A front end's task: the JSON key its prompt asks for, and the reply's schema."""

    key: str
    schema: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def format(self) -> ResponseFormat | None:
        return ResponseFormat(schema=self.schema, name=self.key) if self.schema else None


TASKS: dict[str, TaskKind] = {k.key: k for k in (
    TaskKind("title", _object("title", {"type": "string", "maxLength": 60})),
    TaskKind("tags", _object("tags", _strings(4, 30))),
    TaskKind("follow_ups", _object("follow_ups", _strings(3, 90))),
    TaskKind("queries", _object("queries", _strings(3, 60, min_items=0))),
    TaskKind("text", _object("text", {"type": "string", "maxLength": 120})),
)}
_FREE = TaskKind("free")
_FREE_JSON = TaskKind("json")


def register_task(kind: TaskKind) -> None:
    """Recognise another front end's task by the JSON key its prompt asks for."""
    TASKS[kind.key] = kind


def task_kind(target: Target, query: Query) -> TaskKind | None:
    """The background task `query` is, or None for a person's question."""
    text = query.text.lstrip()
    if not text.startswith(MARKER) and target.kind != TASK_MODEL:
        return None
    instructions = re.split(r"<chat_history>|### Chat History", text, maxsplit=1)[0]
    for key in _KEY.findall(instructions):
        if key in TASKS:
            return TASKS[key]
    return _FREE_JSON if "JSON" in instructions else _FREE


def task_request(orchestrator: Orchestrator, target: Target, query: Query, kind: TaskKind,
                 fmt: ResponseFormat | None, sampling: Sampling,
                 system: str | None) -> AnswerRequest:
    """One stage on the target's first model, no persona, nothing remembered."""
    fmt = fmt or kind.format or (ResponseFormat() if kind is _FREE_JSON else None)
    limit = MAX_TOKENS if sampling.max_tokens is None else min(sampling.max_tokens, MAX_TOKENS)
    stage = ModelStage(name="task", model=_first_model(orchestrator, target), confidence=1.0,
                       timeout=TIMEOUT, system_prompt=system, max_tokens=limit,
                       temperature=_or(sampling.options.temperature, 0.2),
                       format=fmt)
    return AnswerRequest(query=query, stages=[stage], remember=False)


def _first_model(orchestrator: Orchestrator, target: Target) -> str:
    if target.kind == "model":
        return target.ref
    step = (orchestrator.manifest.chain(target.ref).steps[0] if target.kind == "chain"
            else orchestrator.stages[0].model)
    return orchestrator.manifest.resolve(step).model.id


def shaped(orchestrator: Orchestrator, target: Target, query: Query, request: AnswerRequest,
           fmt: ResponseFormat | None, sampling: Sampling,
           system: str | None = None) -> AnswerRequest:
    """`request` as a background task, or as a structured answer, when it is one."""
    kind = task_kind(target, query)
    if kind is not None:
        return task_request(orchestrator, target, query, kind, fmt, sampling, system)
    if fmt is not None:
        return structured.constrained(orchestrator, request, fmt, sampling, system)
    return request


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
