"""Background tasks of chat front ends: one quick stage, nothing remembered.

Open WebUI asks the chat's model for a title, tags and follow-up questions after every
answer (and, when turned on, search queries and autocompletion), in prompts that begin
`### Task:` and ask for a JSON object. Run as a staged answer, each would take as long
as the answer itself and be stored in memory as if the person had said it. Here a task,
recognised by that opening or sent to the `mirador:task` model, is one stage on the
target's first model, without a persona: no chain, no memory write, no learning record.

Known tasks are recognised by the JSON key their prompt asks for. A front end's template
is written for large models (guidelines, a placeholder reply, examples) and a small model
copies it ('{"title": "your concise title here"}'), so for these the template is replaced
by one plain instruction above the chat history it carries, and the reply is decoded
greedily under a grammar of a bounded schema (a few short strings) with a token limit
of its own: it parses, stays short, and is written about the chat.

    key          task                      reply (the grammar's bounds)
    title        chat title                {"title": "..."}: 3 to 6 words, 60 characters
    tags         chat tags                 {"tags": [...]}: 1 to 3 of 20 characters
    follow_ups   follow-up suggestions     {"follow_ups": [...]}: 1 to 3 of 60
    queries      search/retrieval queries  {"queries": [...]}: 0 to 3 of 40
    text         autocompletion            {"text": "..."}: 80 (its own prompt kept)

Each task's token limit is the longest reply its schema allows (`_longest`), so the
limit never cuts the JSON; the bounds keep replies short.

Any other `### Task:` prompt is sent as it is and gets a short free answer (JSON if it
asks for JSON). A `format` or `response_format` the client sent wins over the table; a
lower token limit or a temperature the client sent wins too.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from mirador.backends import ResponseFormat
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.server import structured
from mirador.server.compat import Target
from mirador.server.options import Sampling
from mirador.server.runtime import AnswerRequest

MARKER = "### Task:"
TASK_MODEL = "task"  # mirador:task
MAX_TOKENS = 160  # for a task not in the table
TEMPERATURE = 0.0  # greedy: a chore wants the likeliest words, not variety
TIMEOUT = 60.0  # generous: the model may still be loading when the first task comes
_KEY = re.compile(r'\{\s*"(\w+)"\s*:')
# A title's words: 3 to 6 of them, of ASCII letters and digits (bench/titles.py chose this
# on its tuning half: 88% of titles named the topic in 3-6 words, against 25% for a free
# string; held out, 75% against 44%). A pattern allowing any language's letters scored
# 69% on tuning, so titles here are ASCII; `text` and other tasks are not restricted.
_WORD = r"[A-Za-z0-9'-]{1,16}"
_HISTORY = re.compile(r"<chat_history>\s*(.*?)\s*</chat_history>", re.DOTALL)


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
    max_tokens: int = MAX_TOKENS
    instruction: str | None = None  # replaces the front end's template; None: keep it

    def prompt(self, text: str) -> str:
        """What the model is asked: the instruction under the chat history, when both exist."""
        found = _HISTORY.search(text)
        if self.instruction is None or found is None:
            return text
        return f"Conversation:\n{found.group(1)}\n\n{self.instruction}"

    @property
    def format(self) -> ResponseFormat | None:
        return ResponseFormat(schema=self.schema, name=self.key) if self.schema else None


def _kind(key: str, schema: dict[str, Any], instruction: str | None = None) -> TaskKind:
    return TaskKind(key, schema, _longest(schema), instruction)


def _longest(schema: dict[str, Any]) -> int:
    """Tokens the longest reply `schema` allows can take (a token is at least a character,
    and a greedy model puts one space between parts): a limit that never cuts the JSON."""
    if schema["type"] == "string":
        return schema["maxLength"] + 3
    if schema["type"] == "array":
        return schema["maxItems"] * (_longest(schema["items"]) + 2) + 4
    return sum(len(k) + 5 + _longest(v) for k, v in schema["properties"].items()) + 4


TASKS: dict[str, TaskKind] = {k.key: k for k in (
    _kind("title", _object("title", {"type": "string", "maxLength": 60,
                                     "pattern": f"^{_WORD}( {_WORD}){{2,5}}$"}),
          "What is the topic of this conversation? Answer with a short headline."),
    _kind("tags", _object("tags", _strings(3, 20)),
          "Which field of knowledge is this conversation about?"),
    _kind("follow_ups", _object("follow_ups", _strings(3, 60)),
          "Write three short questions the user could ask next about this topic."),
    _kind("queries", _object("queries", _strings(3, 40, min_items=0)),
          "Write up to three short web search queries for the user's last message."),
    _kind("text", _object("text", {"type": "string", "maxLength": 80})),
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
    """One greedy, bounded stage on the target's first model (the quick stage's, so it is
    warm), no persona, nothing remembered."""
    fmt = fmt or kind.format or (ResponseFormat() if kind is _FREE_JSON else None)
    wished = sampling.max_tokens
    limit = kind.max_tokens if wished is None else min(wished, kind.max_tokens)
    stage = ModelStage(name="task", persona=_first_model(orchestrator, target), confidence=1.0,
                       timeout=TIMEOUT, system_prompt=system, max_tokens=limit,
                       temperature=_or(sampling.options.temperature, TEMPERATURE),
                       format=fmt)
    asked = dataclasses.replace(query, text=kind.prompt(query.text))
    return AnswerRequest(query=asked, stages=[stage], remember=False)


def _first_model(orchestrator: Orchestrator, target: Target) -> str:
    if target.kind == "model":
        return target.ref
    step = (orchestrator.manifest.chain(target.ref).steps[0] if target.kind == "chain"
            else orchestrator.stages[0].persona)
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
