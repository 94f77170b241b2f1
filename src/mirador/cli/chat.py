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
from mirador.cli.render import TerminalRenderer, use_color, warnings_between_lines
from mirador.cli.text import text_problem
from mirador.orchestration.events import Done
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings, load_settings

HISTORY_TURNS = 6  # earlier exchanges each answer sees
HELP = ("Commands: /rate N [note] rates the last answer 1-5, /exit (or Ctrl-D) to leave, "
        "/help for this. Ctrl-C stops an answer.")


@click.command()
@click.option("--stages", help="Comma-separated stages to run for every message.")
@click.option("--model", help="Run every stage on this model.")
@click.option("--no-color", is_flag=True, help="No colours.")
@click.option("--no-memory", is_flag=True, help="Recall nothing and remember nothing.")
@click.option("--continue", "continue_last", is_flag=True, help="Continue the last session.")
@click.option("--session", "session_id", metavar="ID", help="Continue (or start) session ID.")
@click.option("--namespace", "-n", default="default", show_default=True,
              help="The project whose memories this chat uses and adds to.")
def chat(stages: str | None, model: str | None, no_color: bool, no_memory: bool,
         continue_last: bool, session_id: str | None, namespace: str) -> None:
    """Talk with Mirador; each message is answered progressively. The chat is one session."""
    from mirador.memory.memory import session_log
    from mirador.memory.sessions import session_for
    from mirador.settings import without_memory

    settings = load_settings()
    settings.ensure_home()
    session = session_for(session_log(settings), continue_last, session_id)
    if no_memory:
        settings = without_memory(settings)
    renderer = TerminalRenderer(color=use_color(settings.config.color, no_color, sys.stdout))
    typing: list[Callable[[str], None]] = []  # told the text as it is typed
    with warnings_between_lines(renderer):
        asyncio.run(_chat(settings, renderer, _line_reader(settings, typing),
                          split_stages(stages), model, typing, session, namespace))


def _line_reader(settings: Settings,
                 typing: list[Callable[[str], None]] | None = None) -> Callable[[], str]:
    """prompt_toolkit on a terminal (editing, history); plain lines from a pipe."""
    if not sys.stdin.isatty():
        return lambda: _plain_line()
    from prompt_toolkit import PromptSession
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history = (FileHistory(str(settings.history_path)) if settings.config.memory.enabled
               else InMemoryHistory())  # memory off: no typed line is written anywhere
    session: PromptSession[str] = PromptSession(history=history)
    if typing is not None:
        def changed(buffer: Buffer) -> None:
            for told in typing:
                told(buffer.text)

        session.default_buffer.on_text_changed += changed
    return lambda: session.prompt("you> ")


def _preload_while_typing(orchestrator: Orchestrator,
                          typing: list[Callable[[str], None]] | None) -> None:
    """Hand what is typed to the preloader (debounced there); prompt_toolkit runs in a
    worker thread, so it goes through the event loop."""
    preloader = orchestrator.preloader
    if preloader is None or typing is None:
        return
    loop = asyncio.get_running_loop()

    def seen(text: str) -> None:
        loop.call_soon_threadsafe(preloader.typing, text)

    typing.append(seen)


def _plain_line() -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


async def _chat(settings: Settings, renderer: TerminalRenderer, read: Callable[[], str],
                stages: list[str] | None, model: str | None,
                typing: list[Callable[[str], None]] | None = None,
                session: tuple[str, tuple[Message, ...]] | None = None,
                namespace: str = "default") -> None:
    from mirador.compose import create_orchestrator

    session_id, earlier = session or (uuid.uuid4().hex[:12], ())
    history: list[Message] = list(earlier)
    last_answer: str | None = None
    click.echo(HELP, err=True)
    async with create_orchestrator(settings) as orchestrator:
        _preload_while_typing(orchestrator, typing)
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
            if text_problem(line):
                click.echo(f"mirador: {text_problem(line)}", err=True)
                continue
            if line.split(maxsplit=1)[0] == "/rate":
                await _rate(orchestrator, last_answer, line)
                continue
            query = Query(text=line, session_id=session_id, namespace=namespace,
                          history=tuple(history))
            done = await _one_turn(orchestrator, query, renderer, stages, model)
            last_answer = done.answer_id if done is not None else last_answer
            answer = done.answer if done is not None else ""
            if answer:
                history += [Message("user", line), Message("assistant", answer)]
                history = history[-2 * HISTORY_TURNS:]


async def _rate(orchestrator: Orchestrator, answer_id: str | None, line: str) -> None:
    """`/rate N [note]`: rate this chat's last answer through the chat's own learner and
    memory, once the answer is recorded; a mistake is reported, not fatal."""
    from mirador.cli.rate import parse_rating
    from mirador.errors import MiradorError
    from mirador.ratings import rate_live

    parts = line.split(maxsplit=2)
    if answer_id is None or len(parts) < 2:
        click.echo("usage: /rate N [note], N from 1 to 5, after an answer", err=True)
        return
    try:
        stored = await rate_live(orchestrator, answer_id, parse_rating(parts[1]),
                                 parts[2] if len(parts) > 2 else None)
    except MiradorError as exc:
        click.echo(f"mirador: error: {exc}", err=True)
        return
    click.echo(f"(rated {stored.rating}/5 · {stored.query_type} · {stored.chain}; "
               f"mirador why {stored.answer_id})", err=True)


async def _one_turn(orchestrator: Orchestrator, query: Query, renderer: TerminalRenderer,
                    stages: list[str] | None, model: str | None) -> Done | None:
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
        return None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if done.status == "error":
        click.echo(f"mirador: error: {done.error}", err=True)
    return done
