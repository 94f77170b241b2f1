"""The built-in tools: `calculate`, `search_memory`, `search_docs` and `read_file`.

Each is an ordinary `make_tool` function; the ones that need the settings (the
memory store, the documents index) are made per settings by `builtin_tools`.
Blocking work (Chroma, the embedder) runs in worker threads (`make_tool` puts
sync functions there).
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from mirador.tools import calc
from mirador.tools.decorator import make_tool
from mirador.toolspec import Tool, ToolError, ToolResult

if TYPE_CHECKING:
    from mirador.settings import Settings


# What an expression may hold; the grammar of the embedded model keeps to it too.
EXPRESSION = Field(pattern=r"^[0-9A-Za-z.,%+*/^() -]+$", max_length=calc.MAX_LENGTH)


def calculate(expression: Annotated[str, EXPRESSION]) -> ToolResult:
    """Evaluate arithmetic: numbers, + - * / // % **, parentheses, percentages and math
    functions (sqrt, log, sin...), e.g. '17.5% of 2340 + 12**2'."""
    value = calc.calculate(expression)
    return ToolResult(calc.format_result(expression, value), data=value)


def builtin_tools(settings: Settings) -> list[Tool]:
    """The built-in tools for these settings."""
    return [_calculate_tool(), _memory_tool(settings), *_docs_tools(settings)]


@cache
def _calculate_tool() -> Tool:
    return make_tool(calculate, source="builtin", timeout=5.0)


def _memory_tool(settings: Settings) -> Tool:
    def search_memory(query: str) -> ToolResult:
        """Search what Mirador remembers of earlier conversations with this person."""
        if not settings.config.memory.enabled:
            raise ToolError("memory is turned off (memory.enabled: false in config.yaml)")
        from mirador.memory import build_store
        from mirador.memory.memory import guarded

        store = build_store(settings)
        try:
            hits = guarded(store.recall, query, time.time())
        finally:
            store.close()
        lines = [f"- {h.record.query} -> {h.record.response}" for h in hits]
        return ToolResult("\n".join(lines) or "nothing remembered about that",
                          data=[h.record.id for h in hits])

    return make_tool(search_memory, source="builtin")


def _docs_tools(settings: Settings) -> list[Tool]:
    from mirador.tools.docs import DocsIndex

    index = DocsIndex(settings)

    def search_docs(query: str) -> ToolResult:
        """Search the person's documents (folders added with 'mirador docs add')."""
        hits = index.search(query)
        if not hits:
            return ToolResult("no documents are indexed, or none match; add a folder with "
                              "'mirador docs add PATH'", data=[])
        text = "\n\n".join(f"[{h.path}]\n{h.text}" for h in hits)
        return ToolResult(text, data=[h.path for h in hits])

    def read_file(path: str) -> ToolResult:
        """Read a file from one of the person's indexed document folders."""
        return ToolResult(index.read(path), data=path)

    return [make_tool(search_docs, source="builtin"), make_tool(read_file, source="builtin")]
