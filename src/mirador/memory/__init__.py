"""Memory: Mirador remembers finished exchanges and recalls them by meaning.

    store.py     ChromaDB collections per namespace (local files or a Chroma server)
    ranking.py   similarity, decay, supersession and exact names -> ranked, scored results
    context.py   the context compiler: memories, preferences and turns within a token budget
    sessions.py  session journals: `ask --continue`, `--session ID`, `chat`
    transfer.py  JSONL export and a validating import
    memory.py    `Memory`: the orchestrator's ContextSource and AnswerSink (recall, the writer)

Importing this package is cheap: chromadb, numpy and the embedding model load
in background threads when memory is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirador.memory.memory import Memory, build_store, session_log
from mirador.memory.records import MemoryRecord, Recalled

if TYPE_CHECKING:
    from mirador.embeddings import Embedder
    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.settings import Settings

__all__ = ["Memory", "MemoryRecord", "Recalled", "attach", "build_store", "session_log",
           "set_rating"]


def attach(orchestrator: Orchestrator, embedder: Embedder | None = None,
           start: bool = True) -> Memory | None:
    """Give the orchestrator memory (context for later stages, every answer remembered),
    unless the settings turn memory off. Loading starts now, in the background (with
    `start=False`: at the first recall or write); pass the embedder another part already
    loads to share it."""
    settings = orchestrator.settings
    if not settings.config.memory.enabled:
        return None
    memory = Memory(settings, orchestrator.manager, orchestrator.manifest, embedder=embedder)
    if start:
        memory.start()
    orchestrator.context = memory
    orchestrator.sinks.append(memory)
    return memory


def set_rating(settings: Settings, answer_id: str, rating: int | None) -> bool:
    """Put a rating (1-5; None clears it) on the memory of answer `answer_id`.
    False when memory is off or no memory has that id (e.g. it was forgotten)."""
    if not settings.config.memory.enabled:
        return False
    from mirador.memory.memory import guarded

    return bool(guarded(build_store(settings).set_rating, answer_id, rating))
