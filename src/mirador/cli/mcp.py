"""`mirador mcp`: Mirador's memory search, document search and `ask` as MCP tools, over stdio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import click

from mirador.errors import MiradorError
from mirador.settings import Settings, load_settings

if TYPE_CHECKING:
    from mirador.orchestration.orchestrator import Orchestrator


class Answerer:
    """`ask` for the MCP server: one orchestrator, built at the first question, kept warm."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._orchestrator: Orchestrator | None = None

    async def ask(self, question: str, namespace: str) -> str:
        from mirador.orchestration.events import final
        from mirador.orchestration.hooks import Query

        if self._orchestrator is None:
            from mirador.compose import create_orchestrator

            self._orchestrator = create_orchestrator(self.settings)
        done = await final(self._orchestrator.process(Query(text=question,
                                                            namespace=namespace)))
        if done.status == "error":
            raise MiradorError(f"no answer: {done.error}")
        return done.answer

    @asynccontextmanager
    async def lifespan(self, _server: Any) -> AsyncIterator[None]:
        """Close the orchestrator (models, memory writes) when the server stops."""
        try:
            yield None
        finally:
            if self._orchestrator is not None:
                await self._orchestrator.aclose()


@click.command()
def mcp() -> None:
    """Serve Mirador's memory search, document search and ask as MCP tools over stdio.

    For editors and agent apps that speak MCP: add a stdio server whose command is
    `mirador mcp`. Tools: search_memory(query, limit, namespace), search_docs(query,
    limit), ask(question, namespace).
    """
    from mirador.tools.mcp_server import DocsSearch, McpBackends, MemorySearch, build_server

    settings = load_settings()
    answerer = Answerer(settings)
    backends = McpBackends(search_memory=MemorySearch(settings), ask=answerer.ask,
                           search_docs=DocsSearch(settings))
    build_server(backends, lifespan=answerer.lifespan).run("stdio")
