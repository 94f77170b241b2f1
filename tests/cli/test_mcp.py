"""`mirador mcp`, driven by the MCP SDK's own stdio client, as an editor would."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mirador.memory import MemoryRecord, build_store
from mirador.settings import load_settings

FAST_CONFIG = """
stages:
  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 16}
  - {name: synthesis, persona: synthesizer, confidence: 0.95, max_tokens: 16}
"""


def mirador_mcp(home: Path) -> StdioServerParameters:
    env = {"MIRADOR_HOME": str(home), "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return StdioServerParameters(command=sys.executable, args=["-m", "mirador", "mcp"], env=env)


@pytest.fixture
def home_with_a_memory(isolated_home: Path) -> Path:
    (isolated_home / "config.yaml").write_text(FAST_CONFIG)
    build_store(load_settings()).add([MemoryRecord(
        id="m-1", query="When is Ana's recital?", response="Ana's piano recital is on "
        "Saturday at 5 pm.", namespace="family")])
    return isolated_home


async def test_mirador_mcp_serves_memory_search_and_ask(home_with_a_memory: Path) -> None:
    async with Client(mirador_mcp(home_with_a_memory), read_timeout_seconds=240) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"search_memory", "search_docs", "ask"}
        assert tools["search_memory"].input_schema["required"] == ["query"]

        found = await client.call_tool("search_memory", {"query": "piano recital"})
        assert not found.is_error
        [hit] = found.structured_content["result"]
        assert hit["id"] == "m-1" and "Saturday" in hit["response"]
        assert hit["namespace"] == "family"
        assert json.loads(found.content[0].text)["id"] == "m-1"  # type: ignore[union-attr]

        answer = await client.call_tool("ask", {"question": "What is the capital of France?"})
        assert not answer.is_error, answer.content
        assert answer.content[0].text.strip()  # type: ignore[union-attr]

        blank = await client.call_tool("ask", {"question": "  "})
        assert blank.is_error and "blank" in blank.content[0].text  # type: ignore[union-attr]
