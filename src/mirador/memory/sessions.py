"""Sessions: which turns belong together, kept so the next process can continue them.

`mirador chat` is one session; `mirador ask --continue` continues the last one and
`--session ID` a given one. Each session's turns are also journalled in a small
JSONL file, so continuing needs no vector store before the first token; forgetting
a memory removes its turn from the journals too.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mirador.backends import Message
from mirador.errors import ConfigError

if TYPE_CHECKING:
    pass

_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Turn:
    id: str
    query: str
    answer: str
    timestamp: float


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


def check_session_id(session_id: str) -> str:
    if not _VALID.match(session_id):
        raise ConfigError(f"session id '{session_id}' is not valid; use 1 to 64 letters, "
                          "digits, '-' or '_'")
    return session_id


class SessionLog:
    """The per-session journals under `<home>/memory/sessions`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def _last(self) -> Path:
        return self.root / "last"

    def last_session(self) -> str | None:
        try:
            text = self._last.read_text().strip()
        except FileNotFoundError:
            return None
        return text if _VALID.match(text) else None

    def set_last(self, session_id: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self._last, check_session_id(session_id) + "\n")

    def append(self, session_id: str, turn: Turn) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(turn.__dict__, ensure_ascii=False)
        with (self.root / f"{check_session_id(session_id)}.jsonl").open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def turns(self, session_id: str) -> list[Turn]:
        path = self.root / f"{check_session_id(session_id)}.jsonl"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        turns = []
        for line in lines:
            try:
                turns.append(Turn(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line torn by a crash mid-write: the turn was in flight
        return turns

    def history(self, session_id: str, turns: int) -> tuple[Message, ...]:
        """The last `turns` exchanges of a session as chat messages."""
        recent = self.turns(session_id)[-turns:] if turns else []
        messages: list[Message] = []
        for turn in recent:
            messages += [Message("user", turn.query), Message("assistant", turn.answer)]
        return tuple(messages)

    def forget(self, ids: Iterable[str]) -> int:
        """Remove these memories' turns from every journal; returns how many went."""
        gone = set(ids)
        if not gone or not self.root.is_dir():
            return 0
        self._drop_partial_writes()
        removed = 0
        for path in self.root.glob("*.jsonl"):
            turns = self.turns(path.stem)
            kept = [t for t in turns if t.id not in gone]
            if len(kept) != len(turns) or _has_torn_lines(path, len(turns)):
                text = "".join(json.dumps(t.__dict__, ensure_ascii=False) + "\n" for t in kept)
                _atomic_write(path, text)
            removed += len(turns) - len(kept)
        return removed

    def clear(self) -> int:
        """Remove every journal; returns how many turns they held."""
        if not self.root.is_dir():
            return 0
        self._drop_partial_writes()
        removed = 0
        for path in [*self.root.glob("*.jsonl"), self._last]:
            if path.suffix == ".jsonl":
                removed += len(self.turns(path.stem))
            path.unlink(missing_ok=True)
        return removed

    def _drop_partial_writes(self) -> None:
        """Journals half-rewritten when a process was killed (they hold old turns)."""
        for path in self.root.glob("*.tmp"):
            path.unlink(missing_ok=True)


def _has_torn_lines(path: Path, turns: int) -> bool:
    """A line that does not parse (torn by a crash) may still hold text: rewrite it away."""
    return sum(1 for line in path.read_text().splitlines() if line.strip()) != turns


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


HISTORY_TURNS = 6  # earlier exchanges a continued session shows every stage


def session_for(log: SessionLog, continue_last: bool, session_id: str | None
                ) -> tuple[str, tuple[Message, ...]]:
    """The session a query belongs to and its recent turns: `--session ID`, `--continue`
    (the last session, or a new one if there is none), or a new session."""
    if session_id and continue_last:
        raise ConfigError("give either --continue or --session ID, not both")
    chosen = session_id or (log.last_session() if continue_last else None)
    if chosen is None:
        return new_session_id(), ()
    return check_session_id(chosen), log.history(chosen, HISTORY_TURNS)
