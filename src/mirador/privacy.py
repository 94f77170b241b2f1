"""Forgetting: one path that erases exchanges from every file Mirador keeps.

`mirador memory forget`, `mirador privacy wipe`, the server's
`DELETE /mirador/memory/{id}` and Python callers all come here, so an exchange
forgotten one way is gone every way. What one exchange leaves under the home,
and what erases it (a memory's id is its answer's id, so one id names it
everywhere):

    memory/chroma/            the vector store (and lexical index)    MemoryStore.forget
    memory/sessions/*.jsonl   the session journals                    SessionLog.forget
    learning.db               the query, its embedding, rating notes  LearningStore.forget_text
    models/usage.json         the query's words (preload hints)       UsageLog.forget
    chat_history              lines typed in `mirador chat`           ChatHistory.forget

The query texts are read first; the copies derived from them are erased next and
the two sources (the memory store, then the ratings database) last, so a forget
that is interrupted (even by SIGKILL) finishes when it is run again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirador.errors import MiradorError
from mirador.learning.store import DB_NAME, LearningStore
from mirador.memory.sessions import SessionLog
from mirador.models.usage import UsageLog
from mirador.settings import Settings

if TYPE_CHECKING:
    from mirador.memory.memory import Memory
    from mirador.memory.store import MemoryStore
    from mirador.orchestration.orchestrator import Orchestrator

USAGE_FILE = ("models", "usage.json")
LEARNING_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal")


@dataclass(frozen=True)
class Live:
    """Parts a running process holds open, so forgetting changes them, not stale copies."""

    memory: Memory | None = None
    usage: UsageLog | None = None


@dataclass(frozen=True)
class Forgotten:
    """What a forget erased: memories, journal turns and answers whose text was dropped."""

    memories: int
    turns: int
    answers: int

    @property
    def anything(self) -> bool:
        return bool(self.memories or self.turns or self.answers)

    def to_json(self) -> dict[str, int]:
        return {"memories": self.memories, "turns": self.turns, "answers": self.answers}


def live_parts(orchestrator: Orchestrator) -> Live:
    """The memory and preload history a running orchestrator holds (either may be None)."""
    from mirador.memory.memory import Memory

    memory = orchestrator.context if isinstance(orchestrator.context, Memory) else None
    preloader = orchestrator.preloader
    return Live(memory=memory, usage=preloader.usage if preloader is not None else None)


def forget(settings: Settings, ids: Sequence[str], live: Live | None = None) -> Forgotten:
    """Erase these exchanges (memory ids = answer ids) from every file Mirador keeps."""
    live = live or Live()
    ids = list(dict.fromkeys(ids))
    _drop_partial_writes(settings)
    with _store(settings, live) as store:
        texts = _texts(settings, store, ids)
        _usage(settings, live).forget(texts)
        ChatHistory(settings.history_path).forget(texts)
        turns = _sessions(settings).forget(ids)
        memories = _guarded(store.forget, ids) if store is not None else 0
    answers = _forget_learned_text(settings, ids)
    return Forgotten(memories=memories, turns=turns, answers=answers)


def forget_all(settings: Settings, live: Live | None = None) -> Forgotten:
    """Erase every exchange: memories, journals, and every text the ratings database and
    the preload history keep. What ratings taught (without any text) is kept."""
    live = live or Live()
    _drop_partial_writes(settings)
    _usage(settings, live).forget(None)
    ChatHistory(settings.history_path).clear()
    turns = _sessions(settings).clear()
    with _store(settings, live) as store:
        memories = _guarded(store.forget_all) if store is not None else 0
    answers = _forget_learned_text(settings, None)
    return Forgotten(memories=memories, turns=turns, answers=answers)


def wipe(settings: Settings) -> list[Path]:
    """Remove every personal file Mirador keeps (memories, journals, the ratings database,
    preload history, chat history, the MCP servers' logs, trained adapters); keep config,
    manifest and models. Returns what went."""
    if settings.config.memory.chroma_server is not None:  # memories live on that server
        with _store(settings, Live()) as store:
            if store is not None:
                _guarded(store.forget_all)
    home = settings.home
    targets = [home / "memory", *(home / n for n in LEARNING_FILES), home.joinpath(*USAGE_FILE),
               settings.history_path, home / "logs",  # logs: MCP servers' stderr
               home / "adapters"]  # trained on rated answers (mirador train)
    removed = [path for path in targets if path.exists() or path.is_symlink()]
    for path in removed:
        _remove(path)
    _drop_partial_writes(settings)
    return removed


def _drop_partial_writes(settings: Settings) -> None:
    """Files half-written when a process was killed mid-rewrite (they hold old text)."""
    for path in (settings.home.joinpath(*USAGE_FILE), settings.history_path):
        path.with_name(path.name + ".partial").unlink(missing_ok=True)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        raise MiradorError(f"cannot remove {path} ({exc.strerror}); remove it by hand, or "
                           "fix its permissions and run 'mirador privacy wipe' again") from None


# -- the parts ----------------------------------------------------------------------------


@contextmanager
def _store(settings: Settings, live: Live) -> Iterator[MemoryStore | None]:
    """The memory store to forget in: the live one, else the one on disk (None: no store)."""
    if live.memory is not None:
        live.memory.flush()  # an exchange still queued would be written after the forget
        yield live.memory.store()
        return
    on_disk = (settings.home / "memory" / "chroma").is_dir()
    if not on_disk and settings.config.memory.chroma_server is None:
        yield None
        return
    from mirador.memory import build_store

    store = build_store(settings)
    try:
        yield store
    finally:
        store.close()


def _guarded(function: Any, *args: Any) -> int:
    from mirador.memory.memory import guarded

    return int(guarded(function, *args))


def _texts(settings: Settings, store: MemoryStore | None, ids: Sequence[str]) -> list[str]:
    """The query texts these exchanges left, wherever they are still kept."""
    texts = []
    if store is not None:
        for memory_id in ids:
            record = _guard_get(store, memory_id)
            if record is not None:
                texts.append(record.query)
    learning = _learning(settings)
    if learning is not None:
        with closing(learning):
            texts += learning.queries(ids)
    return list(dict.fromkeys(texts))


def _guard_get(store: MemoryStore, memory_id: str) -> Any:
    from mirador.memory.memory import guarded

    return guarded(store.get, memory_id)


def _learning(settings: Settings) -> LearningStore | None:
    path = settings.home / DB_NAME
    return LearningStore.open(path) if path.exists() else None


def _forget_learned_text(settings: Settings, ids: Sequence[str] | None) -> int:
    learning = _learning(settings)
    if learning is None:
        return 0
    with closing(learning):
        return learning.forget_text(ids)


def _usage(settings: Settings, live: Live) -> UsageLog:
    return live.usage or UsageLog(settings.home.joinpath(*USAGE_FILE))


def _sessions(settings: Settings) -> SessionLog:
    from mirador.memory.memory import session_log

    return session_log(settings)


class ChatHistory:
    """`mirador chat`'s line-editing history (prompt_toolkit's FileHistory format):
    entries start with a `# <time>` line, and each line of an entry starts with '+'."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def forget(self, texts: Iterable[str]) -> int:
        """Remove the entries that are one of `texts`; returns how many went."""
        gone = {t.strip() for t in texts}
        if not gone or not self.path.is_file():
            return 0
        entries = self._entries()
        kept = [(head, lines) for head, lines in entries
                if "\n".join(lines).strip() not in gone]
        if len(kept) != len(entries):
            _atomic_write(self.path, "".join(f"\n{head}\n" + "".join(f"+{line}\n" for line in lines)
                                             for head, lines in kept))
        return len(entries) - len(kept)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _entries(self) -> list[tuple[str, list[str]]]:
        entries: list[tuple[str, list[str]]] = []
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        for line in text.splitlines():
            if line.startswith("+") and entries:
                entries[-1][1].append(line[1:])
            elif line.startswith("#"):
                entries.append((line, []))
        return entries


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)

