"""The tool call loop: the model asks, Mirador runs the tool, the model goes on.

`run_with_tools` wraps one stage's backend stream. When the model asks for a
tool (a `ToolCallRequest`), the arguments are checked against the tool's JSON
schema, the tool runs under its timeout, and its result (or its error, which
the model is shown too) joins the conversation; then the model is asked again.
At most `max_rounds` rounds offer tools; the round after them offers none, so
the model answers. `ToolCall` and `ToolResult` events report each step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from mirador.backends import ChatRequest, Finished, Message, ToolCallRequest
from mirador.errors import MiradorError, report_unexpected
from mirador.orchestration.events import ToolCall, ToolResult
from mirador.toolspec import Tool, ToolError
from mirador.toolspec import ToolResult as Returned

log = logging.getLogger("mirador.tools")
RESULT_CHARS = 4000  # of a tool's result shown to the model

StreamChat = Callable[[ChatRequest], AsyncIterator[Any]]


async def run_with_tools(stream_chat: StreamChat, request: ChatRequest, *, stage: str,
                         max_rounds: int) -> AsyncGenerator[Any, None]:
    """The backend's events for `request`, tool rounds run in between (see the module)."""
    messages = list(request.messages)
    for round_ in range(1, max_rounds + 2):
        offered = request.tools if round_ <= max_rounds else ()
        calls: list[ToolCallRequest] = []
        asked = replace(request, messages=tuple(messages), tools=offered)
        async with aclosing(stream_chat(asked)) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, ToolCallRequest):
                    calls.append(event)
                elif not (calls and isinstance(event, Finished)):
                    yield event
        if not calls:
            return
        messages.append(Message("assistant", "", tool_calls=tuple(calls)))
        for call in calls:
            yield ToolCall(stage=stage, model=request.model.id, tool=call.name,
                           arguments=call.arguments, round=round_)
            begun = time.perf_counter()
            result = await run_tool(request.tools, call)
            yield ToolResult(stage=stage, tool=call.name, ok=result.ok, text=result.text,
                             seconds=round(time.perf_counter() - begun, 4), round=round_)
            messages.append(Message("tool", result.text[:RESULT_CHARS], tool_name=call.name,
                                    tool_call_id=call.id or None))


async def run_tool(tools: Sequence[Tool], call: ToolCallRequest) -> Returned:
    """Run the tool `call` names on its arguments: its result, or an error result saying
    what went wrong (an unknown tool, bad arguments, a timeout, the tool's own failure)."""
    by_name = {t.name: t for t in tools}
    tool = by_name.get(call.name)
    if tool is None:
        return Returned(f"there is no tool '{call.name}' (available: {', '.join(by_name)})",
                        ok=False)
    problem = argument_problem(tool, call.arguments)
    if problem:
        return Returned(f"bad arguments for {tool.name}: {problem}", ok=False)
    try:
        async with asyncio.timeout(tool.timeout):
            return await tool.call(call.arguments)
    except TimeoutError:
        return Returned(f"{tool.name} took longer than {tool.timeout:g} s and was stopped",
                        ok=False)
    except (ToolError, MiradorError) as exc:
        return Returned(str(exc), ok=False)
    except Exception as exc:  # a tool's own bug: logged, and the model is told it failed
        report_unexpected(log, f"tool {tool.name} ({tool.source}) failed", exc)
        return Returned(f"{tool.name} failed: {type(exc).__name__}: {exc}", ok=False)


def argument_problem(tool: Tool, arguments: dict[str, Any]) -> str | None:
    """What is wrong with `arguments` by the tool's JSON schema, or None."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(tool.parameters).iter_errors(arguments),
                    key=lambda e: list(e.path))
    if not errors:
        return None
    return "; ".join(f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}"
                     for e in errors[:3])
