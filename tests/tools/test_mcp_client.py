"""MCP servers' tools as Mirador tools, against a real MCP server (tests/support/mcp_echo.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from mirador.settings import McpServerConfig, ToolsConfig, load_settings
from mirador.tools.mcp_client import McpTools, tool_name
from mirador.toolspec import ToolError

ECHO = str(Path(__file__).parents[1] / "support" / "mcp_echo.py")


def echo_server(name: str = "echo") -> McpServerConfig:
    return McpServerConfig(name=name, command=sys.executable, args=[ECHO])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the MCP HTTP server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the MCP HTTP server did not listen on {port}")


@pytest.fixture
def http_echo() -> Iterator[str]:
    """The echo server over streamable HTTP on a loopback port, stopped after the test."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, ECHO, "--http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_stdio_server_tools_become_prefixed_tools() -> None:
    async with McpTools([echo_server()]) as mcp:
        tools = {tool.name: tool for tool in await mcp.tools()}
        assert set(tools) == {"echo__add", "echo__shout_loud", "echo__pid", "echo__broken"}
        add = tools["echo__add"]
        assert add.description == "Add two integers and return the sum."
        assert add.parameters["required"] == ["a", "b"] and add.source == "mcp:echo"
        assert (await add.call({"a": 2, "b": 40})).text == "42"
        assert (await tools["echo__shout_loud"].call({"text": "hi"})).text == "HI!"


async def test_a_tool_error_is_a_failed_result_not_an_exception() -> None:
    async with McpTools([echo_server()]) as mcp:
        [broken] = [tool for tool in await mcp.tools() if tool.name == "echo__broken"]
        result = await broken.call({})
        assert not result.ok and "broken on purpose" in result.text


async def test_the_session_opens_on_first_use_and_aclose_stops_the_server() -> None:
    mcp = McpTools([echo_server()])
    assert all(connection._owner is None for connection in mcp.connections)
    [pid_tool] = [tool for tool in await mcp.tools() if tool.name == "echo__pid"]
    pid = int((await pid_tool.call({})).text)
    os.kill(pid, 0)  # running
    await mcp.aclose()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_calls_from_other_tasks_share_one_session() -> None:
    async with McpTools([echo_server()]) as mcp:
        [add] = [tool for tool in await mcp.tools() if tool.name == "echo__add"]
        results = await asyncio.gather(*(add.call({"a": i, "b": 1}) for i in range(5)))
        assert [result.text for result in results] == ["1", "2", "3", "4", "5"]


async def test_http_server_tools(http_echo: str) -> None:
    async with McpTools([McpServerConfig(name="web", url=http_echo), echo_server()]) as mcp:
        tools = {tool.name: tool for tool in await mcp.tools()}
        assert {"web__add", "echo__add"} <= set(tools)
        assert (await tools["web__add"].call({"a": 1, "b": 2})).text == "3"


@pytest.mark.parametrize("server", [
    McpServerConfig(name="missing", command="/nonexistent/mcp-server"),
    McpServerConfig(name="mute", command=sys.executable, args=["-c", "pass"]),
    McpServerConfig(name="nobody", url=f"http://127.0.0.1:{_free_port()}/mcp"),
], ids=["no-such-command", "exits-at-once", "nothing-listening"])
async def test_a_server_that_fails_to_start_is_named(server: McpServerConfig) -> None:
    async with McpTools([server], timeout=10) as mcp:
        with pytest.raises(ToolError, match=f"MCP server '{server.name}' failed: .*tools.mcp"):
            await mcp.tools()


def test_names_are_valid_openai_function_names() -> None:
    assert tool_name("files", "read.file/v2") == "files__read_file_v2"
    assert len(tool_name("s", "x" * 100)) == 64


def test_mcp_servers_come_from_config_yaml(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        "tools:\n  mcp:\n    - {name: echo, command: python3, args: [echo.py], env: {A: b}}\n"
        "    - {name: web, url: 'http://127.0.0.1:9/mcp'}\n")
    servers = load_settings().config.tools.mcp
    assert [(s.name, s.command, s.url) for s in servers] == [
        ("echo", "python3", None), ("web", None, "http://127.0.0.1:9/mcp")]


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "x"}, "exactly one of 'command'"),
    ({"name": "x", "command": "a", "url": "http://b"}, "exactly one of 'command'"),
    ({"name": "x", "url": "http://b", "args": ["c"]}, "'args' and 'env' are for stdio"),
    ({"name": "has.dot", "command": "a"}, "should match pattern"),
    ({"name": "x", "command": "a", "cwd": "/"}, "Extra inputs"),
])
def test_bad_mcp_entries_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        McpServerConfig.model_validate(entry)


def test_mcp_names_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="must be unique"):
        ToolsConfig.model_validate({"mcp": [{"name": "a", "command": "x"},
                                            {"name": "a", "command": "y"}]})


async def test_a_stdio_servers_stderr_goes_to_its_log_in_the_home(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        "tools:\n  mcp:\n"
        f"    - {{name: crashy, command: {sys.executable}, "
        "args: ['-c', 'import sys; sys.exit(\"no config for crashy\")']}\n")
    async with McpTools.from_settings(load_settings()) as mcp:
        log = isolated_home / "logs" / "mcp-crashy.log"
        with pytest.raises(ToolError, match=f"'crashy' failed: .*its output: {log}"):
            await mcp.tools()
    assert "no config for crashy" in log.read_text()


async def test_one_failing_server_does_not_hide_the_others_tools() -> None:
    servers = [McpServerConfig(name="missing", command="/nonexistent/mcp-server"), echo_server()]
    async with McpTools(servers) as mcp:
        tools, [failure] = await mcp.tools_and_failures()
        assert {tool.name for tool in tools} >= {"echo__add"}
        assert "MCP server 'missing' failed" in str(failure)


async def test_the_registry_lists_configured_servers_tools_and_calls_them(
        tmp_path: Path) -> None:
    from mirador.settings import load_settings
    from mirador.tools.registry import available_tools

    (tmp_path / "config.yaml").write_text(
        f"tools:\n  mcp:\n    - {{name: echo, command: {sys.executable}, args: [{ECHO}]}}\n"
        "    - {name: missing, command: /nonexistent/mcp-server}\n")
    tools = available_tools(load_settings(home=tmp_path, env={}))
    assert "echo__add" in tools and tools["echo__add"].source == "mcp:echo"
    assert not any(name.startswith("missing") for name in tools), "a dead server is left out"
    result = await tools["echo__add"].call({"a": 2, "b": 40})
    assert result.ok and "42" in result.text


async def test_a_stdio_server_killed_after_starting_is_started_again_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async with McpTools([echo_server()], timeout=20) as mcp:
        tools = {tool.name: tool for tool in await mcp.tools()}
        first = int((await tools["echo__pid"].call({})).text)
        os.kill(first, signal.SIGKILL)
        assert (await tools["echo__add"].call({"a": 2, "b": 40})).text == "42"
        second = int((await tools["echo__pid"].call({})).text)
        assert second != first and mcp.connections[0].restarts == 1
        assert "MCP server 'echo' closed its connection; starting it again" in caplog.text
        os.kill(second, 0)  # the new one runs
        os.kill(second, signal.SIGKILL)
        assert (await tools["echo__add"].call({"a": 1, "b": 1})).text == "2"
        assert mcp.connections[0].restarts == 2
        third = int((await tools["echo__pid"].call({})).text)
    with pytest.raises(ProcessLookupError):
        os.kill(third, 0)  # closing stops the restarted server too


async def test_a_server_that_dies_again_at_once_is_a_tool_error(tmp_path: Path) -> None:
    """A server that serves one request and then exits: the call after its death restarts
    it once; when that session also closes before answering, the call fails, named."""
    flag = tmp_path / "started-once"
    script = tmp_path / "dies.py"
    script.write_text(
        "import os, sys, pathlib\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "if flag.exists():\n"
        "    sys.exit(1)  # every later start dies at once\n"
        "flag.write_text('x')\n"
        f"sys.argv = [{ECHO!r}]\n"
        f"exec(compile(open({ECHO!r}).read(), {ECHO!r}, 'exec'))\n")
    server = McpServerConfig(name="frail", command=sys.executable, args=[str(script)])
    async with McpTools([server], timeout=20) as mcp:
        tools = {tool.name: tool for tool in await mcp.tools()}
        os.kill(int((await tools["frail__pid"].call({})).text), signal.SIGKILL)
        with pytest.raises(ToolError, match="MCP server 'frail' failed"):
            await tools["frail__add"].call({"a": 1, "b": 2})
