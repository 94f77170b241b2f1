"""What a tool is: a named, described function with a JSON schema for its arguments.

Tools are what models call to act: built-ins (`calculate`, `search_memory`,
`search_docs`, `read_file`, `run_python`), a person's own functions marked with
`@mirador.tool`, tools from plugins (the `register_tools` hook) and tools from MCP
servers. Every one of them, whatever its source, is a `Tool`: the orchestrator's
call loop validates a model's arguments against `parameters` and awaits `call`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mirador.errors import MiradorError


class ToolError(MiradorError):
    """A tool could not run: bad arguments, a timeout, or its own failure.

    The message is shown to the model (and the person) as the tool's result, so it
    says what was wrong and what would work instead.
    """


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned, as text for the model; `ok` is False for an error."""

    text: str
    ok: bool = True
    data: Any = None  # the structured value, for callers that want more than text


@dataclass(frozen=True)
class Tool:
    """A tool a model may call.

    `parameters` is a JSON schema (type "object") for the arguments; `call` takes
    the validated arguments and returns a `ToolResult`. `source` says where the tool
    comes from ("builtin", "user", a plugin's name, "mcp:SERVER").
    """

    name: str
    description: str
    parameters: dict[str, Any]
    call: Callable[[dict[str, Any]], Awaitable[ToolResult]]
    source: str = "builtin"
    timeout: float = 30.0
    tags: tuple[str, ...] = field(default=())
