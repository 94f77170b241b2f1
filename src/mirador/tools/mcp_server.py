"""Mirador as an MCP server: its memory search and `ask` as MCP tools.

`mirador mcp` (mirador.cli.mcp) serves these over stdio, so editors and agent
apps that speak MCP can search what Mirador remembers and ask it questions.
This module builds the server from the functions its tools call; the CLI
wires `ask` to an orchestrator (the composition root sits above this layer).
Document search is not served yet: it joins when the docs index does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mirador.errors import MiradorError
from mirador.settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from mirador.memory.store import MemoryStore

AskFn = Callable[[str, str], Awaitable[str]]  # (question, namespace) -> the final answer
SearchFn = Callable[[str, int, "str | None"], Awaitable[list[dict[str, Any]]]]
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]

INSTRUCTIONS = ("Mirador is the person's local AI assistant. search_memory finds what they "
                "asked and were answered before; ask answers a question with their local "
                "models and memory. Nothing leaves their machine.")


@dataclass(frozen=True)
class McpBackends:
    """What the served tools call."""

    search_memory: SearchFn
    ask: AskFn


class MemorySearch:
    """Memory search for the MCP server: the store opens at the first search."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: MemoryStore | None = None

    def _open(self) -> MemoryStore:
        if not self.settings.config.memory.enabled:
            raise MiradorError("memory is turned off (memory.enabled: false in config.yaml); "
                               "turn it on to search what is remembered")
        if self._store is None:
            from mirador.memory import build_store

            self._store = build_store(self.settings)
        return self._store

    def _search(self, query: str, limit: int, namespace: str | None) -> list[dict[str, Any]]:
        from dataclasses import replace

        store = self._open()
        params = replace(store.params, limit=limit)
        return [_hit(found.to_json()) for found in
                store.recall(query, time.time(), namespace, params)]

    async def __call__(self, query: str, limit: int,
                       namespace: str | None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._search, query, limit, namespace)


def _hit(found: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "namespace", "query", "response", "timestamp", "score", "similarity")
    return {key: found[key] for key in keep if key in found}


def _tool_error(exc: MiradorError) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(str(exc))


def build_server(backends: McpBackends, lifespan: Lifespan | None = None) -> MCPServer:
    """An MCP server whose tools are Mirador's memory search and `ask`."""
    from mcp.server.mcpserver import MCPServer

    server: MCPServer = MCPServer("mirador", instructions=INSTRUCTIONS, lifespan=lifespan)

    @server.tool(name="search_memory", description="Search what the person asked Mirador "
                 "before and what it answered, by meaning; best matches first.")
    async def search_memory(query: str, limit: int = 5,
                            namespace: str | None = None) -> list[dict[str, Any]]:
        if not query.strip() or not 1 <= limit <= 50:
            raise _tool_error(MiradorError("give a non-blank query and a limit from 1 to 50"))
        try:
            return await backends.search_memory(query, limit, namespace)
        except MiradorError as exc:
            raise _tool_error(exc) from exc

    @server.tool(name="ask", description="Ask Mirador a question; it answers with the "
                 "person's local models and what it remembers, and returns the final answer.")
    async def ask(question: str, namespace: str = "default") -> str:
        if not question.strip():
            raise _tool_error(MiradorError("the question is blank; say what to ask"))
        try:
            return await backends.ask(question.strip(), namespace)
        except MiradorError as exc:
            raise _tool_error(exc) from exc

    return server

