"""Showing a progressive answer in a terminal, or as JSON lines for scripts."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    Event,
    StageEnd,
    StageStart,
    Token,
    ToolCall,
    ToolResult,
)

GREY, WHITE, CYAN = "\x1b[90m", "\x1b[97m", "\x1b[36m"
DIM, RED, RESET = "\x1b[2m", "\x1b[31m", "\x1b[0m"


class Renderer(Protocol):
    def show(self, event: Event) -> None: ...


def confidence_color(confidence: float) -> str:
    """Below 0.7 grey, below 0.9 white, else cyan."""
    if confidence < 0.7:
        return GREY
    if confidence < 0.9:
        return WHITE
    return CYAN


def use_color(setting: str, no_color: bool, stream: TextIO) -> bool:
    if no_color or setting == "never":
        return False
    return setting == "always" or stream.isatty()


LENGTH_NOTE = "stopped at its token limit"  # how a stage cut by max_tokens is marked


@dataclass
class TerminalRenderer:
    """Stage headers, tokens coloured by confidence, errors on stderr, a closing summary.

    The plan line and a stage's header are held back until that stage shows something
    (a token, an error, its end): until then the model may still be getting ready, and
    whatever progress that prints finishes before the header, never inside the answer.
    """

    color: bool = False
    quiet: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _at_line_start: bool = True
    _held: list[Event] = field(default_factory=list)
    _notes: list[str] = field(default_factory=list)  # warnings waiting for a line's end

    def show(self, event: Event) -> None:
        if isinstance(event, Ack | StageStart):
            self._held.append(event)
            return
        self._release()
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _release(self) -> None:
        held, self._held = self._held, []
        for event in held:
            getattr(self, f"_on_{event.type}")(event)

    def _paint(self, text: str, color: str) -> str:
        return f"{color}{text}{RESET}" if self.color else text

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        if text:
            self._at_line_start = text.endswith("\n")
        if self._at_line_start and self._notes:
            self._say_notes()

    def warnings(self) -> logging.Handler:
        """A handler for Mirador's logged warnings ("memory could not be recalled...")
        that shows each on stderr at the end of the answer's current line, never inside
        it (the terminal shows both streams in one)."""
        return _NoteHandler(self)

    def note(self, text: str) -> None:
        self._notes.append(text)
        if self._at_line_start:
            self._say_notes()

    def _say_notes(self) -> None:
        notes, self._notes = self._notes, []
        for text in notes:
            self.err.write(self._paint(f"mirador: {text}\n", DIM))
        self.err.flush()

    def close(self) -> None:
        """End an open line, so warnings still waiting are shown."""
        if self._notes and not self._at_line_start:
            self._write("\n")
        self._say_notes()

    def _on_ack(self, event: Ack) -> None:
        if not self.quiet and self.err.isatty():
            plan = " → ".join(event.stages)
            self.err.write(self._paint(f"({event.complexity}: {plan})\n", DIM))

    def _on_stage_start(self, event: StageStart) -> None:
        if self.quiet:
            return
        if not self._at_line_start:
            self._write("\n")
        gap = "\n" if event.index else ""
        header = (f"── {event.stage} · {event.persona} on {event.model} · "
                  f"confidence {event.confidence:.2f} ──")
        self._write(f"{gap}{self._paint(header, DIM)}\n")

    def _on_token(self, event: Token) -> None:
        if not self.quiet:
            self._write(self._paint(event.text, confidence_color(event.confidence)))

    def _on_tool_call(self, event: ToolCall) -> None:
        if self.quiet:
            return
        if not self._at_line_start:
            self._write("\n")
        args = ", ".join(f"{k}={v!r}" for k, v in event.arguments.items())
        self._write(self._paint(f"⚙ {event.tool}({args})\n", DIM))

    def _on_tool_result(self, event: ToolResult) -> None:
        if self.quiet:
            return
        text = " ".join(event.text.split())
        text = text if len(text) <= 100 else text[:99] + "…"
        mark = "→" if event.ok else "✗"
        self._write(self._paint(f"  {mark} {text} ({event.seconds:.2f} s)\n",
                                DIM if event.ok else RED))

    def _on_error(self, event: ErrorEvent) -> None:
        if not self._at_line_start and not self.quiet:
            self._write("\n")
        self.err.write(self._paint(f"[{event.status}] {event.message}\n", RED))
        self.err.flush()

    def _on_stage_end(self, event: StageEnd) -> None:
        if self.quiet:
            return
        if not self._at_line_start:
            self._write("\n")
        why = event.reason or (LENGTH_NOTE if event.finish_reason == "length" else None)
        if why:  # else a text cut mid-sentence would look like the whole answer
            self._write(self._paint(f"[{event.stage} {why}]\n", DIM))

    def _on_done(self, event: Done) -> None:
        if self.quiet:
            if event.answer:
                self._write(event.answer.rstrip() + "\n")
            return
        if event.status == "error":
            return
        if event.set_aside and event.final_stage:
            note = (f"── answer: {event.final_stage}'s; set aside "
                    f"{', '.join(event.set_aside)} ({_flags(event)}) ──")
            self._write("\n" + self._paint(note, DIM) + "\n")
        first = f", first token {event.ttft:.2f} s" if event.ttft is not None else ""
        summary = (f"({len(event.answers)} stages, {event.tokens} tokens, "
                   f"{event.seconds:.1f} s{first})")
        if self.err.isatty():
            self.err.write(self._paint(summary + "\n", DIM))


@contextmanager
def warnings_between_lines(renderer: Renderer) -> Iterator[None]:
    """While an answer streams to a terminal, Mirador's logged warnings wait for the end
    of the answer's line (JSON output leaves them to Python's plain stderr handler)."""
    if not isinstance(renderer, TerminalRenderer):
        yield
        return
    handler, logger = renderer.warnings(), logging.getLogger("mirador")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        renderer.close()


class _NoteHandler(logging.Handler):
    def __init__(self, renderer: TerminalRenderer) -> None:
        super().__init__(logging.WARNING)
        self._renderer = renderer

    def emit(self, record: logging.LogRecord) -> None:
        self._renderer.note(record.getMessage())


def _flags(event: Done) -> str:
    """What was wrong with the stages set aside, from the gate's scores."""
    flags = {flag for name in event.set_aside
             for flag in event.quality.get(name, {}).get("flags", [])}
    return ", ".join(sorted(flags)) or "less relevant to the question"


@dataclass
class JsonRenderer:
    """One JSON object per line, each with a `type`."""

    out: TextIO = field(default_factory=lambda: sys.stdout)

    def show(self, event: Event) -> None:
        self.out.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self.out.flush()
