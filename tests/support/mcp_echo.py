"""A small real MCP server for tests, written with the SDK's MCPServer (FastMCP in mcp 1.x).

Run as a script: `python mcp_echo.py` serves stdio; `python mcp_echo.py --http PORT`
serves streamable HTTP on 127.0.0.1:PORT at /mcp.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("echo")


@server.tool(description="Add two integers and return the sum.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(name="shout.loud", description="Say the text in capitals.")
def shout(text: str) -> str:
    return text.upper() + "!"


@server.tool(description="The server's process id.")
def pid() -> int:
    return os.getpid()


@server.tool(description="Always fails, to test error results.")
def broken() -> str:
    raise ToolError("this tool is broken on purpose")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
