"""`mirador chat`: an interactive session with line editing, history and streaming answers."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import Callable

import click

from mirador.backends import Message
from mirador.cli.ask import split_stages, stream_answer
from mirador.cli.render import TerminalRenderer, use_color
from mirador.orchestration.orchestrator import Orchestrator, Query
from mirador.settings import Settings, load_settings

HISTORY_TURNS = 6  # earlier exchanges each answer sees
HELP = "Commands: /exit (or Ctrl-D) to leave, /help for this. Ctrl-C stops an answer."


@click.command()
@click.option("--stages", help="Comma-separated stages to run for every message.")
@click.option("--model", help="Run every stage on this model.")
@click.option("--no-color", is_flag=True, help="No colours.")
def chat(stages: str | None, model: str | None, no_color: bool) -> None:
    """Talk with Mirador; each message is answered progressively."""
    settings = load_settings()
    settings.ensure_home()
    renderer = TerminalRenderer(color=use_color(settings.config.color, no_color, sys.stdout))
    asyncio.run(_chat(settings, renderer, _line_reader(settings), split_stages(stages), model))


def _line_reader(settings: Settings) -> Callable[[], str]:
    """prompt_toolkit on a terminal (editing, history); plain lines from a pipe."""
    if not sys.stdin.isatty():
        return lambda: _plain_line()
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    session: PromptSession[str] = PromptSession(history=FileHistory(str(settings.history_path)))
    return lambda: session.prompt("you> ")


def _plain_line() -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


async def _chat(settings: Settings, renderer: TerminalRenderer, read: Callable[[], str],
                stages: list[str] | None, model: str | None) -> None:
    from mirador.app import create_orchestrator

    session_id = uuid.uuid4().hex[:12]
    history: list[Message] = []
    click.echo(HELP, err=True)
    async with create_orchestrator(settings) as orchestrator:
        while True:
            try:
                line = (await asyncio.to_thread(read)).strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line in ("/exit", "/quit"):
                break
            if line == "/help" or not line:
                click.echo(HELP, err=True) if line else None
                continue
            query = Query(text=line, session_id=session_id, history=tuple(history))
            answer = await _one_turn(orchestrator, query, renderer, stages, model)
            if answer:
                history += [Message("user", line), Message("assistant", answer)]
                history = history[-2 * HISTORY_TURNS:]


async def _one_turn(orchestrator: Orchestrator, query: Query, renderer: TerminalRenderer,
                    stages: list[str] | None, model: str | None) -> str:
    """One answer; Ctrl-C stops it and returns to the prompt."""
    task = asyncio.ensure_future(stream_answer(orchestrator, query, renderer,
                                               stages=stages, model=model))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        done = await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        click.echo("\n(stopped)", err=True)
        return ""
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if done.status == "error":
        click.echo(f"mirador: error: {done.error}", err=True)
    return done.answer
