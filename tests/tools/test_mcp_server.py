"""The MCP server's tools in-process, through the SDK's client (end to end: tests/cli)."""

from __future__ import annotations

from pathlib import Path

from mcp import Client

from mirador.cli.mcp import Answerer
from mirador.memory import MemoryRecord, build_store
from mirador.settings import load_settings
from mirador.tools.mcp_server import McpBackends, MemorySearch, build_server


def server_for(settings):  # type: ignore[no-untyped-def]
    answerer = Answerer(settings)
    return build_server(McpBackends(search_memory=MemorySearch(settings), ask=answerer.ask),
                        lifespan=answerer.lifespan)


async def test_search_memory_filters_by_namespace_and_limit(isolated_home: Path) -> None:
    settings = load_settings()
    build_store(settings).add([
        MemoryRecord(id=f"m-{i}", query=f"Note {i} about the garden", response="Water the "
                     f"tomatoes, round {i}.", namespace="home" if i % 2 else "work")
        for i in range(6)])
    async with Client(server_for(settings)) as client:
        found = await client.call_tool("search_memory", {"query": "garden tomatoes",
                                                         "limit": 2, "namespace": "home"})
        hits = found.structured_content["result"]
        assert len(hits) == 2 and {hit["namespace"] for hit in hits} == {"home"}


async def test_search_memory_says_when_memory_is_off(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("memory:\n  enabled: false\n")
    async with Client(server_for(load_settings())) as client:
        result = await client.call_tool("search_memory", {"query": "anything"})
        assert result.is_error
        assert "memory.enabled: false" in result.content[0].text  # type: ignore[union-attr]
