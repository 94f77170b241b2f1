"""`mirador ask`: one query, answered progressively."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import click

from mirador import warmstart
from mirador.cli.main import private_streams, resume_gc
from mirador.cli.render import (
    JsonRenderer,
    TerminalRenderer,
    use_color,
    warnings_between_lines,
)
from mirador.cli.text import query_text
from mirador.errors import ConfigError
from mirador.orchestration.events import Done, Event, Token, final
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.server.client import ServerClient, find_server
from mirador.server.client import stream_answer as stream_from_server
from mirador.settings import Settings, load_settings, without_memory

Renderer = JsonRenderer | TerminalRenderer


def split_stages(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


@click.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--stages", help="Comma-separated stages to run, overriding the routing "
              "(e.g. quick_response,synthesis).")
@click.option("--model", help="Run every stage on this model: a manifest id, ollama:TAG, "
              "openai:NAME or a .gguf path.")
@click.option("--chain", help="Run a named chain of personas (see 'mirador chains').")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final answer.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line, for scripts.")
@click.option("--no-color", is_flag=True, help="No colours, even on a terminal.")
@click.option("--local", is_flag=True, help="Answer in this process even when 'mirador serve' "
              "is running (by default a running server answers, with its models warm).")
@click.option("--no-memory", is_flag=True, help="Recall nothing and remember nothing this time.")
@click.option("--continue", "continue_last", is_flag=True,
              help="Continue the last session (its recent turns are shown to every stage).")
@click.option("--session", "session_id", metavar="ID", help="Continue (or start) session ID.")
@click.option("--namespace", "-n", default="default", show_default=True,
              help="The project whose memories this query uses and adds to.")
def ask(query: tuple[str, ...], stages: str | None, model: str | None, chain: str | None,
        quiet: bool, as_json: bool, no_color: bool, local: bool, no_memory: bool,
        continue_last: bool, session_id: str | None, namespace: str) -> None:
    """Answer QUERY: a fast first answer, then deeper stages. Use - to read it from stdin."""
    text = query_text(sys.stdin.read() if query == ("-",) else " ".join(query))
    settings = load_settings()
    out, err = private_streams()  # see private_copy
    renderer = JsonRenderer(out=out) if as_json else TerminalRenderer(
        color=use_color(settings.config.color, no_color, out), quiet=quiet, out=out, err=err)
    options = {"stages": split_stages(stages), "model": model, "chain": chain}
    if no_memory:
        settings = without_memory(settings)
    server = None if local or no_memory else find_server(settings)
    if session_id and continue_last:  # said before any model loads
        raise ConfigError("give either --continue or --session ID, not both")
    wanted = _Wanted(text.strip(), namespace, continue_last, session_id)
    with warnings_between_lines(renderer):
        done = asyncio.run(_ask(settings, wanted, renderer, options, server))
    if done.status == "error":
        if not as_json:
            click.echo(f"mirador: error: {done.error}", file=err)
        sys.exit(1)


@dataclass(frozen=True)
class _Wanted:
    """The query as asked, before its session's turns are read."""

    text: str
    namespace: str
    continue_last: bool
    session_id: str | None

    def query(self, settings: Settings) -> Query:
        from mirador.memory.memory import session_log
        from mirador.memory.sessions import session_for

        session, history = session_for(session_log(settings), self.continue_last,
                                       self.session_id)
        return Query(text=self.text, session_id=session, namespace=self.namespace,
                     history=history)


async def _ask(settings: Settings, wanted: _Wanted, renderer: Renderer,
               options: dict[str, Any], server: ServerClient | None = None) -> Done:
    from mirador.compose import open_for_one_answer

    if server is not None:  # a running `mirador serve` answers, with its models already warm
        warmstart.discard()  # the model this process began loading, if any, is not needed
        return await show_events(stream_from_server(server, wanted.query(settings), **options),
                                 renderer)

    warm = not (options.get("stages") or options.get("chain"))  # else another stage is first
    # the first stage's model starts loading before anything else is read (the session)
    async with await open_for_one_answer(settings, warm, options.get("model")) as orchestrator:
        query = await asyncio.to_thread(wanted.query, settings)
        return await stream_answer(orchestrator, query, renderer, **options)


async def stream_answer(orchestrator: Orchestrator, query: Query, renderer: Renderer,
                        **options: Any) -> Done:
    """Show every event of one answer and return its `Done`."""
    return await show_events(orchestrator.process(query, **options), renderer)


async def show_events(events: AsyncIterator[Event], renderer: Renderer) -> Done:
    """Show every event of a stream (from a server or in-process) and return its `Done`;
    the garbage collector resumes once the first token is shown (`resume_gc`)."""
    def show(event: Event) -> None:
        renderer.show(event)
        if isinstance(event, Token | Done):
            resume_gc()

    try:
        return await final(events, show)
    finally:
        resume_gc()
