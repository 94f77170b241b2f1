"""The MCP server's tools through the SDK's client: in-process, and `mirador mcp` over stdio
for document search (memory search and ask over stdio: tests/cli/test_mcp.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters

from mirador.cli.mcp import Answerer
from mirador.memory import MemoryRecord, build_store
from mirador.settings import load_settings
from mirador.tools.docs import DocsIndex
from mirador.tools.mcp_server import DocsSearch, McpBackends, MemorySearch, build_server
from tests.tools.test_docs import LEASE, write_pdf


def server_for(settings):  # type: ignore[no-untyped-def]
    answerer = Answerer(settings)
    return build_server(McpBackends(search_memory=MemorySearch(settings), ask=answerer.ask,
                                    search_docs=DocsSearch(settings)),
                        lifespan=answerer.lifespan)


def mirador_mcp(home: Path) -> StdioServerParameters:
    env = {"MIRADOR_HOME": str(home), "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return StdioServerParameters(command=sys.executable, args=["-m", "mirador", "mcp"], env=env)


async def test_mirador_mcp_over_stdio_searches_the_indexed_documents(isolated_home: Path,
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "lease.md").write_text(LEASE)
    write_pdf(folder / "garden.pdf", "The tomatoes are watered every Tuesday")
    DocsIndex(load_settings()).add(folder)
    async with Client(mirador_mcp(isolated_home), read_timeout_seconds=240) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["search_docs"].input_schema["required"] == ["query"]
        found = await client.call_tool("search_docs", {"query": "When are the tomatoes "
                                                       "watered?", "limit": 1})
        assert not found.is_error, found.content
        [hit] = found.structured_content["result"]
        assert hit["path"].endswith("garden.pdf") and "Tuesday" in hit["text"]
        assert 0 < hit["similarity"] <= 1
        wrong = await client.call_tool("search_docs", {"query": "rent", "limit": 99})
        assert wrong.is_error and "limit from 1 to 20" in wrong.content[0].text  # type: ignore[union-attr]


async def test_search_docs_says_how_to_index_when_nothing_is(isolated_home: Path) -> None:
    async with Client(server_for(load_settings())) as client:
        result = await client.call_tool("search_docs", {"query": "rent"})
        assert result.is_error
        assert "mirador docs add PATH" in result.content[0].text  # type: ignore[union-attr]


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
