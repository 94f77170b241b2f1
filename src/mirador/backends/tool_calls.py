"""Tool calls on the wire: the grammar the embedded model answers in, and the JSON shapes
Ollama and OpenAI-compatible servers use.

A model without native tool calling (the embedded llama.cpp one) is told the
tools in its system prompt and constrained by a grammar to reply with exactly
one JSON object: `{"tool": NAME, "arguments": {...}}` (arguments matching that
tool's schema) or `{"answer": "..."}`. Once a tool's result is in the
conversation, it answers in plain text, streamed like any answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mirador.backends.base import Message, ResponseFormat, TextPiece, ToolCallRequest
from mirador.errors import BackendError
from mirador.toolspec import Tool

TOOL_PROMPT = (
    "You can use these tools:\n{tools}\n"
    "Reply with one JSON object: {{\"tool\": \"NAME\", \"arguments\": {{...}}}} to use a tool, "
    "or {{\"answer\": \"...\"}} when no tool is needed.")
RESULT_PROMPT = "The tool {name} returned: {result}\nUse this to answer my question."


def choice_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """A JSON schema: one of a call of each tool, or an answer."""
    calls = [{"type": "object", "properties": {"tool": {"const": t.name},
                                               "arguments": _closed(t.parameters)},
              "required": ["tool", "arguments"]} for t in tools]
    answer = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"]}
    return {"oneOf": [*calls, answer]}


def choice_format(tools: Sequence[Tool]) -> ResponseFormat:
    return ResponseFormat(schema=choice_schema(tools), name="tool_choice")


def describe_tools(tools: Sequence[Tool]) -> str:
    """The tools as lines a small model reads: `name(arg: type): description`."""
    lines = []
    for tool in tools:
        props = tool.parameters.get("properties", {})
        args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in props.items())
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


def wants_choice(messages: Sequence[Message], tools: Sequence[Tool]) -> bool:
    """Whether the model should choose (a call or an answer) rather than answer in prose:
    it has tools and no tool result yet follows the last question."""
    return bool(tools) and not (messages and messages[-1].role == "tool")


def prompted(messages: Sequence[Message], tools: Sequence[Tool], choosing: bool
             ) -> tuple[Message, ...]:
    """`messages` for a model without native tools: calls and results as plain turns, and
    (when `choosing`) the tools described in the system prompt."""
    plain = [_plain(m) for m in messages]
    if choosing:
        guide = TOOL_PROMPT.format(tools=describe_tools(tools))
        if plain and plain[0].role == "system":
            plain[0] = Message("system", f"{plain[0].content}\n\n{guide}")
        else:
            plain.insert(0, Message("system", guide))
    return tuple(plain)


def _plain(message: Message) -> Message:
    if message.role == "tool":
        return Message("user", RESULT_PROMPT.format(name=message.tool_name or "tool",
                                                    result=message.content))
    if message.tool_calls:
        call = message.tool_calls[0]
        return Message("assistant", json.dumps({"tool": call.name, "arguments": call.arguments}))
    return message


def parse_choice(text: str) -> TextPiece | ToolCallRequest:
    """The grammar-constrained reply as a call or as the answer's text."""
    try:
        data = json.loads(text)
    except ValueError:
        raise BackendError(f"the model's tool choice is not JSON ({text[:80]!r}); it was "
                           "probably cut short: raise the persona's max_tokens") from None
    if "tool" in data:
        return ToolCallRequest(name=data["tool"], arguments=data.get("arguments") or {})
    return TextPiece(text=str(data.get("answer", "")))


def _closed(parameters: dict[str, Any]) -> dict[str, Any]:
    schema = dict(parameters)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


# -- Ollama and OpenAI wire shapes ----------------------------------------------------------

def wire_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The `tools` field both Ollama's /api/chat and OpenAI's chat API take."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": _closed(t.parameters)}}
            for t in tools]


def wire_arguments(raw: Any) -> dict[str, Any]:
    """Arguments as sent: a JSON object, or a string holding one (OpenAI)."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        raise BackendError(f"the model sent tool arguments that are not JSON: {raw!r:.80}"
                           ) from None
    if not isinstance(value, dict):
        raise BackendError(f"the model sent tool arguments that are not an object: {raw!r:.80}")
    return value


@dataclass
class CallFragments:
    """OpenAI's streamed `delta.tool_calls`, accumulated by index until the stream ends."""

    calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def feed(self, deltas: Sequence[Any]) -> None:
        for delta in deltas:
            index = _get(delta, "index") or 0
            slot = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            function = _get(delta, "function") or {}
            slot["id"] = _get(delta, "id") or slot["id"]
            slot["name"] += _get(function, "name") or ""
            slot["arguments"] += _get(function, "arguments") or ""

    def requests(self) -> list[ToolCallRequest]:
        return [ToolCallRequest(name=c["name"], arguments=wire_arguments(c["arguments"]),
                                id=c["id"]) for _, c in sorted(self.calls.items())]


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)
