"""Mirador as an MCP server: its memory search, document search and `ask` as MCP tools.

`mirador mcp` (mirador.cli.mcp) serves these over stdio, so editors and agent
apps that speak MCP can search what Mirador remembers, search the documents the
person indexed with `mirador docs add`, and ask it questions. This module builds
the server from the functions its tools call; the CLI wires `ask` to an
orchestrator (the composition root sits above this layer).
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
    from mirador.tools.docs import DocsIndex

AskFn = Callable[[str, str], Awaitable[str]]  # (question, namespace) -> the final answer
SearchFn = Callable[[str, int, "str | None"], Awaitable[list[dict[str, Any]]]]
DocsFn = Callable[[str, int], Awaitable[list[dict[str, Any]]]]  # (query, limit) -> hits
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]

INSTRUCTIONS = ("Mirador is the person's local AI assistant. search_memory finds what they "
                "asked and were answered before; search_docs finds passages in the documents "
                "they indexed; ask answers a question with their local models and memory. "
                "Nothing leaves their machine.")


@dataclass(frozen=True)
class McpBackends:
    """What the served tools call."""

    search_memory: SearchFn
    ask: AskFn
    search_docs: DocsFn | None = None  # None: document search is not served


class DocsSearch:
    """Document search for the MCP server: the index (and its embedder) opens at the first
    search, over the folders `mirador docs add` indexed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: DocsIndex | None = None

    def _search(self, query: str, limit: int) -> list[dict[str, Any]]:
        if self._index is None:
            from mirador.tools.docs import DocsIndex

            self._index = DocsIndex(self.settings)
        if not self._index.folders():
            raise MiradorError("no documents are indexed; add a folder with "
                               "'mirador docs add PATH', then search again")
        return [{"path": hit.path, "text": hit.text, "similarity": hit.similarity}
                for hit in self._index.search(query, limit)]

    async def __call__(self, query: str, limit: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._search, query, limit)


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
    """An MCP server whose tools are Mirador's memory search, `ask` and, when given,
    document search."""
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

    if backends.search_docs is not None:
        _serve_docs(server, backends.search_docs)
    return server


def _serve_docs(server: MCPServer, search: DocsFn) -> None:
    @server.tool(name="search_docs", description="Search the person's documents (folders "
                 "they indexed with 'mirador docs add') by meaning: passages with the file "
                 "each is from, best matches first.")
    async def search_docs(query: str, limit: int = 4) -> list[dict[str, Any]]:
        if not query.strip() or not 1 <= limit <= 20:
            raise _tool_error(MiradorError("give a non-blank query and a limit from 1 to 20"))
        try:
            return await search(query, limit)
        except MiradorError as exc:
            raise _tool_error(exc) from exc

