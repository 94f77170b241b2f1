"""The `mirador` entry point: a click group whose commands are imported on demand.

Keeping the command modules (and the model libraries behind them) out of
start-up makes `mirador --help` and `mirador route` instant. This is the only
place that turns Mirador's errors into exit codes and one-line messages;
`MIRADOR_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import sys
import threading
import traceback
from importlib import import_module
from typing import Any, TextIO

import click

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

_COMMANDS = {
    "ask": ("mirador.cli.ask:ask", "Answer a query with progressive, staged streaming."),
    "chat": ("mirador.cli.chat:chat", "Talk with Mirador interactively."),
    "route": ("mirador.cli.route:route", "Show the stages a query would run, running none."),
    "models": ("mirador.cli.models:models", "List, check and manage models and personas."),
    "pull": ("mirador.cli.pull:pull", "Download a model (hf:, https:, ollama:) and register it."),
    "chains": ("mirador.cli.chains:chains", "List the chains of personas that can answer."),
    "memory": ("mirador.cli.memory:memory", "See, search, export and forget what is remembered."),
    "privacy": ("mirador.cli.privacy:privacy", "Erase what Mirador keeps about you (wipe)."),
    "rate": ("mirador.cli.rate:rate", "Rate an answer from 1 to 5 (the last one by default)."),
    "why": ("mirador.cli.why:why", "Explain why an answer used the chain it did."),
    "stats": ("mirador.cli.stats:stats", "What Mirador has learned from ratings."),
    "profile": ("mirador.cli.profile:profile", "Show or pin the energy profile (battery, ...)."),
    "plugins": ("mirador.cli.plugins:plugins", "List installed plugins and what they add."),
    "serve": ("mirador.cli.serve:serve", "Run the local server (Ollama- and OpenAI-compatible)."),
    "mcp": ("mirador.cli.mcp:mcp", "Serve memory search and ask as MCP tools over stdio."),
    "tools": ("mirador.cli.tools:tools", "List the tools models may call."),
    "docs": ("mirador.cli.docs:docs", "Index document folders for the search_docs tool."),
    "agents": ("mirador.cli.agents:agents", "Agents that watch: list, enable, notifications."),
    "train": ("mirador.cli.train:train", "Train a LoRA adapter on your best-rated answers."),
    "adapters": ("mirador.cli.adapters:adapters", "List, use and roll back trained adapters."),
    "federate": ("mirador.cli.federate:federate", "Improve a shared adapter with peers (Flower)."),
    "create": ("mirador.cli.create:create", "Create a persona from a sentence (and train it)."),
    "dna": ("mirador.cli.dna:dna", "Model DNA: how you like answers (verbosity, depth, ...)."),
    "keys": ("mirador.cli.market:keys", "Make and export keys for signing packages."),
    "publish": ("mirador.cli.market:publish", "Sign a package of personas, chains, adapters."),
    "trust": ("mirador.cli.market:trust", "Trust a publisher's public key."),
    "install": ("mirador.cli.market:install", "Verify, check and install a signed package."),
    "uninstall": ("mirador.cli.market:uninstall", "Remove an installed package."),
    "packages": ("mirador.cli.market:packages", "List the installed packages."),
    "search-market": ("mirador.cli.market:search_market", "Search a package index."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module, _, attr = self._lazy[cmd_name][0].partition(":")
            command: click.Command = getattr(import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(self._lazy.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mirador")
def cli() -> None:
    """Mirador: a local-first personal AI orchestrator.

    Answers stream at once from a small fast model, then deepen through
    analysis and synthesis stages. Nothing leaves this machine.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning Mirador's errors into messages and exit codes."""
    # numpy's OpenBLAS would start a thread per core for the embedder's tiny matrices, which
    # then fight llama.cpp's threads for the same cores: a query's embedding took 0.6 s instead
    # of 0.02 s on 2 busy cores. One thread is plenty (set before numpy is first imported).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["ask"], ["chat"]):
        sys.stdout, sys.stderr = private_streams()  # before any model load can start
        gc.disable()  # until the first token (`resume_gc`)
        _start_early(args)

    try:
        _run(argv)
    finally:
        resume_gc()


def resume_gc() -> None:
    """Python's cyclic garbage collector on again, for a command that answers (`main` pauses
    it there), once its first token is out.

    Starting up makes hundreds of thousands of objects (imports, pydantic models,
    dataclasses) and almost none of them are garbage, yet each 700 of them set off a
    collection that scans the young ones, and some of those scan everything. Measured
    alternating with and without, a cold `mirador ask` in a new home reached its first
    token 31 ms sooner without them (0.618 s against 0.649 s, medians of 12; two earlier
    runs: 34 and 43 ms). (Freezing what start-up made, so that later collections skip
    it, crashed a process that ended on an error while a warm start was still loading:
    not done.)"""
    if not gc.isenabled():
        gc.enable()


def _run(argv: list[str] | None) -> None:
    from mirador.errors import MiradorError

    try:
        cli.main(args=argv, prog_name="mirador", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show(_error_stream())
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        print(file=_error_stream())
        sys.exit(EXIT_INTERRUPTED)
    except MiradorError as exc:
        _report(exc)
        sys.exit(EXIT_ERROR)
    except OSError as exc:  # a path the person gave cannot be read or written
        _report(MiradorError(_file_problem(exc)))
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for MIRADOR_DEBUG=1
        _report(exc, bug=True)
        sys.exit(EXIT_ERROR)


def private_copy(stream: TextIO) -> TextIO:
    """`stream` on a duplicate of its file descriptor, so that what is written to it is
    never lost while llama-cpp-python points fds 1 and 2 at /dev/null to silence a model
    load in another thread; a stream without a descriptor is returned as it is."""
    try:
        fd = os.dup(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return stream
    return open(fd, "w", encoding=stream.encoding, errors=stream.errors,  # noqa: SIM115
                buffering=1, closefd=True)


_private: tuple[TextIO, TextIO] | None = None


def private_streams() -> tuple[TextIO, TextIO]:
    """stdout and stderr on descriptors of their own (`private_copy`), made once: by `main`
    for a command that answers, before any model load starts, since a load also swaps
    `sys.stdout` and `sys.stderr` for /dev/null while it runs, in whatever thread."""
    global _private
    if _private is None:
        _private = (private_copy(sys.stdout), private_copy(sys.stderr))
    return _private


def _error_stream() -> TextIO:
    return _private[1] if _private is not None else sys.stderr


_OTHER_FIRST_STAGE = ("--stages", "--chain", "--model", "-h", "--help")


def _start_early(args: list[str]) -> None:
    """For a command that answers, from the first moment: the load of the model its first
    stage used last time, or a new home's guess (`mirador.warmstart`; the configured
    stages only; not when this home's server is running, which will answer), else the
    import of llama.cpp's binding, in a daemon thread, while the command's own modules
    and the settings are read."""
    from mirador import warmstart

    named = {a.partition("=")[0] for a in args}
    if not named & set(_OTHER_FIRST_STAGE):
        warmstart.start(warmstart.default_home())
        return

    def load() -> None:
        with contextlib.suppress(ImportError):  # the backend says so if it is used
            import_module("llama_cpp")

    threading.Thread(target=load, name="mirador-llama-import", daemon=True).start()


def _file_problem(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return (f"cannot use the file{where}: {exc.strerror or exc}; check the path, that its "
            "folder exists and that you may read or write it")


def _report(exc: BaseException, bug: bool = False) -> None:
    err = _error_stream()
    if os.environ.get("MIRADOR_DEBUG") == "1":
        traceback.print_exception(exc, file=err)
    elif bug:
        print(f"mirador: internal error: {type(exc).__name__}: {exc}\n"
              "Run again with MIRADOR_DEBUG=1 to see the traceback, and please report it.",
              file=err)
    else:
        print(f"mirador: error: {exc}", file=err)
