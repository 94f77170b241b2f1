"""Tools from MCP servers the person configures (`tools.mcp` in config.yaml).

Each server is a stdio program (`command`, `args`, `env`) or a streamable-HTTP
endpoint (`url`), reached through the official `mcp` SDK. Its tools become
`Tool`s named `SERVER__tool`: OpenAI's function names allow only letters,
digits, `_` and `-` (at most 64), so a dot would be refused there.

A server's session opens on first use, not at start-up, and lives in a task of
its own: the SDK's client is an anyio context that must be entered and left by
the same task, while tool calls come from whichever task runs an answer.

A server whose connection closes after it started (a stdio program that crashed
or was killed) is started again on the next call, once: the call is sent to the
new session; if that one is gone too, the call fails with a ToolError naming it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mirador.errors import report_unexpected
from mirador.settings import McpServerConfig, Settings
from mirador.toolspec import Tool, ToolError, ToolResult

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult

log = logging.getLogger(__name__)

SEPARATOR = "__"
_NAME_LIMIT = 64  # OpenAI's limit on a function name
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
START_TIMEOUT = 30.0


def tool_name(server: str, remote: str) -> str:
    """`SERVER__tool`, with characters OpenAI and Ollama refuse replaced by `_`."""
    return (server + SEPARATOR + _UNSAFE.sub("_", remote))[:_NAME_LIMIT]


def _target(config: McpServerConfig, errlog: TextIO | None) -> Any:
    """What the SDK's `Client` connects to: a URL, or a stdio transport (stderr to `errlog`)."""
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    if config.url is not None:
        return config.url
    assert config.command is not None
    params = StdioServerParameters(command=config.command, args=config.args,
                                   env=config.env or None)
    return stdio_client(params, errlog=errlog) if errlog is not None else params


def _connection_closed(exc: BaseException) -> bool:
    """Whether `exc` says the server's connection is gone (not that a request failed)."""
    import anyio
    from mcp.shared.exceptions import MCPError
    from mcp.types import CONNECTION_CLOSED

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED
    return isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError |
                      anyio.EndOfStream)


def _describe_failure(exc: BaseException) -> str:
    """The innermost reason, out of the anyio exception groups the SDK raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class McpConnection:
    """One MCP server: a session opened on first use, closed by `aclose`."""

    def __init__(self, config: McpServerConfig, timeout: float = START_TIMEOUT,
                 log_dir: Path | None = None) -> None:
        self.config = config
        self.timeout = timeout
        # a stdio server's stderr goes here, not over the person's terminal
        self.log_path = (log_dir / f"mcp-{config.name}.log"
                         if log_dir is not None and config.command is not None else None)
        self._owner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[Client] | None = None
        self._closing = asyncio.Event()
        self._restarting = asyncio.Lock()
        self.restarts = 0  # times the server was started again after its connection closed

    @property
    def name(self) -> str:
        return self.config.name

    async def client(self) -> Client:
        """The open session, starting the server if this is the first use."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._owner = asyncio.create_task(self._own(self._ready),
                                              name=f"mcp:{self.name}")
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), self.timeout)
        except TimeoutError:
            raise ToolError(f"MCP server '{self.name}' did not answer within "
                            f"{self.timeout:g} s of starting; check its command in "
                            "tools.mcp in config.yaml") from None

    async def _own(self, ready: asyncio.Future[Client]) -> None:
        """Hold the session open (in this one task) until `aclose`."""
        from mcp import Client

        try:
            with self._errlog() as errlog:
                async with Client(_target(self.config, errlog),
                                  read_timeout_seconds=self.timeout) as client:
                    ready.set_result(client)
                    await self._closing.wait()
        except Exception as exc:  # the SDK's and the server's failures, translated here
            its_log = f" (its output: {self.log_path})" if self.log_path else ""
            error = ToolError(f"MCP server '{self.name}' failed: {_describe_failure(exc)}"
                              f"{its_log}; check its entry in tools.mcp in config.yaml")
            if not ready.done():
                ready.set_exception(error)
            else:
                report_unexpected(log, f"MCP server '{self.name}'", exc)

    def _errlog(self) -> AbstractContextManager[TextIO | None]:
        if self.log_path is None:
            return nullcontext()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return self.log_path.open("a", encoding="utf-8")

    async def list_tools(self) -> list[Any]:
        """The server's tools, as the SDK describes them."""
        return list((await self._request(lambda client: client.list_tools())).tools)

    async def call(self, remote: str, args: dict[str, Any]) -> ToolResult:
        """Call one of the server's tools and turn its content into text."""
        return _as_result(await self._request(lambda client: client.call_tool(remote, args)))

    async def _request(self, send: Callable[[Client], Awaitable[Any]]) -> Any:
        """`send` on the session; on a closed connection, once more on a restarted one."""
        client = await self.client()
        try:
            return await send(client)
        except Exception as exc:
            if not _connection_closed(exc):
                raise self._failure(exc) from exc
        await self._restart(client)
        try:
            return await send(await self.client())
        except Exception as exc:
            raise self._failure(exc, " (its connection closed again after a restart)") from exc

    def _failure(self, exc: Exception, more: str = "") -> ToolError:
        """A dead server or a protocol error, named for the person."""
        if isinstance(exc, ToolError):
            return exc
        return ToolError(f"MCP server '{self.name}': {_describe_failure(exc)}{more}")

    async def _restart(self, dead: Client) -> None:
        """Close the session `dead` belongs to (unless another call already did) and let the
        next `client()` start the server again."""
        async with self._restarting:
            ready = self._ready
            if ready is None or not ready.done() or ready.cancelled() \
                    or ready.exception() is not None or ready.result() is not dead:
                return  # restarted meanwhile by another call
            log.warning("MCP server '%s' closed its connection; starting it again", self.name)
            await self.aclose()
            self._owner, self._ready, self._closing = None, None, asyncio.Event()
            self.restarts += 1

    async def aclose(self) -> None:
        """Close the session and stop the server (a stdio server's process ends)."""
        self._closing.set()
        if self._owner is not None:
            await self._owner
        if self._ready is not None and self._ready.done() and not self._ready.cancelled():
            with suppress(ToolError):  # a failed start was already reported to its caller
                self._ready.exception()


def _as_result(result: CallToolResult) -> ToolResult:
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{block.type} content]")
    return ToolResult(text="\n".join(parts), ok=not result.is_error,
                      data=result.structured_content)


def _as_tool(connection: McpConnection, remote: Any) -> Tool:
    name = remote.name

    async def call(args: dict[str, Any]) -> ToolResult:
        return await connection.call(name, args)

    return Tool(name=tool_name(connection.name, name),
                description=remote.description or f"{name} (from MCP server {connection.name})",
                parameters=dict(remote.input_schema), call=call,
                source=f"mcp:{connection.name}", timeout=connection.timeout)


class McpTools:
    """The configured MCP servers' tools; an async context manager that closes them all."""

    def __init__(self, servers: Sequence[McpServerConfig], timeout: float = START_TIMEOUT,
                 log_dir: Path | None = None) -> None:
        self.connections = [McpConnection(server, timeout, log_dir) for server in servers]

    @classmethod
    def from_settings(cls, settings: Settings) -> McpTools:
        """The servers of `tools.mcp`; stdio servers' stderr in HOME/logs/mcp-NAME.log."""
        return cls(settings.config.tools.mcp, log_dir=settings.home / "logs")

    async def tools(self) -> list[Tool]:
        """Every server's tools (starting the servers not yet started)."""
        listed = await asyncio.gather(*(c.list_tools() for c in self.connections))
        return [_as_tool(connection, remote)
                for connection, remotes in zip(self.connections, listed, strict=True)
                for remote in remotes]

    async def tools_and_failures(self) -> tuple[list[Tool], list[ToolError]]:
        """The tools of the servers that started, and an error naming each that did not."""
        listed = await asyncio.gather(*(c.list_tools() for c in self.connections),
                                      return_exceptions=True)
        tools: list[Tool] = []
        failures: list[ToolError] = []
        for connection, remotes in zip(self.connections, listed, strict=True):
            if isinstance(remotes, ToolError):
                failures.append(remotes)
            elif isinstance(remotes, BaseException):
                raise remotes  # not a server's failure (those are ToolErrors): a bug
            else:
                tools += [_as_tool(connection, remote) for remote in remotes]
        return tools, failures

    async def aclose(self) -> None:
        """Close every session, in reverse order of configuration."""
        for connection in reversed(self.connections):
            await connection.aclose()

    async def __aenter__(self) -> McpTools:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()



def mcp_tools(settings: Settings) -> list[Tool]:
    """The configured servers' tools, for the registry (which is synchronous).

    The servers are listed once, in a worker thread with its own event loop, and then
    closed; each call opens its server again on the caller's loop, calls, and closes it
    (the SDK's sessions belong to the task that opened them). A server that fails to
    start is logged with its name and left out; the others' tools remain.
    """
    servers = settings.config.tools.mcp
    if not servers:
        return []
    log_dir = settings.home / "logs"
    with ThreadPoolExecutor(1, thread_name_prefix="mirador-mcp-list") as pool:
        tools, failures = pool.submit(asyncio.run, _listed(servers, log_dir)).result()
    for failure in failures:
        logging.getLogger("mirador.tools").warning("%s", failure)
    by_server = {server.name: server for server in servers}
    return [replace(tool, call=partial(_call_fresh, by_server[tool.source.removeprefix("mcp:")],
                                       tool.name, log_dir)) for tool in tools]


async def _listed(servers: Sequence[McpServerConfig], log_dir: Path
                  ) -> tuple[list[Tool], list[ToolError]]:
    async with McpTools(servers, log_dir=log_dir) as listing:
        return await listing.tools_and_failures()


async def _call_fresh(server: McpServerConfig, name: str, log_dir: Path,
                      args: dict[str, Any]) -> ToolResult:
    async with McpTools([server], log_dir=log_dir) as session:
        tools = {tool.name: tool for tool in await session.tools()}
        if name not in tools:
            raise ToolError(f"MCP server '{server.name}' no longer offers '{name}'; "
                            "run 'mirador tools' to see what it offers now")
        return await tools[name].call(args)
