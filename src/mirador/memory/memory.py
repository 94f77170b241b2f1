"""Memory as the orchestrator sees it: a context source and an answer sink.

`Memory` opens the store and loads the embedder in background threads, so
nothing here delays the first token. Recall runs while the quick stage
streams; finished answers are queued to a writer thread, so storing never
delays an answer, and `flush`/`aclose` (and, failing those, interpreter exit)
wait until every queued exchange is durable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (see below)
import queue
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from mirador.backends import ChatRequest, Message, TextPiece
from mirador.background import Background
from mirador.catalog.manifest import SamplingOptions
from mirador.errors import MemoryStoreError, MiradorError
from mirador.memory.context import Compiled, ContextCompiler, items_for, told_facts
from mirador.memory.lexical import shares_a_word
from mirador.memory.private_apis import before_threads_stop
from mirador.memory.ranking import RankingParams, relevant
from mirador.memory.records import MemoryRecord, Recalled
from mirador.memory.sessions import SessionLog, Turn
from mirador.orchestration.hooks import Recollection
from mirador.text_tokens import estimate_tokens

if TYPE_CHECKING:
    from mirador.catalog.manifest import Manifest, ModelEntry
    from mirador.embeddings import Embedder
    from mirador.memory.store import MemoryStore
    from mirador.models.manager import ModelManager
    from mirador.orchestration.hooks import AnswerRecord, Query
    from mirador.settings import Settings

# concurrent.futures.thread registers a shutdown hook when first imported, which fails once
# the interpreter is exiting; chromadb imports it, and may do so in the writer's flush at
# exit. Importing it here, at start-up, makes that flush safe.

PREFERENCES = 3  # stated preferences offered to the context compiler
_STOP = object()


def ranking_params(settings: Settings) -> RankingParams:
    config = settings.config.memory
    return RankingParams(half_life_days=config.half_life_days,
                         inject_similarity=config.min_relevance, limit=config.recall_limit)


def build_store(settings: Settings, embedder: Embedder | None = None) -> MemoryStore:
    """Open the configured store (blocking: imports chromadb)."""
    from mirador.embeddings import load_embedder
    from mirador.memory.store import open_store

    return open_store(settings, embedder or load_embedder(settings, start=False),
                      ranking_params(settings))


def session_log(settings: Settings) -> SessionLog:
    return SessionLog(settings.home / "memory" / "sessions")


class Memory:
    """Recalls context for later stages and remembers every finished answer."""

    def __init__(self, settings: Settings, manager: ModelManager | None = None,
                 manifest: Manifest | None = None, store: MemoryStore | None = None,
                 embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self.config = settings.config.memory
        self.manager = manager
        self.manifest = manifest
        self.sessions = session_log(settings)
        self._store: Background[MemoryStore] = (
            Background(self._open, "mirador-memory-open", start=False) if store is None
            else Background.of(store, "mirador-memory-open"))
        self._opening = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._errors: list[BaseException] = []
        self._writer: threading.Thread | None = None
        self._closed = False
        self.last_context: Compiled | None = None

    # -- opening ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin opening the store and loading the embedder in the background."""
        self._store.start()

    def _open(self) -> MemoryStore:
        from mirador.embeddings import load_embedder

        # the embedder loads in parallel with chromadb's import
        embedder = self._embedder or load_embedder(self.settings)
        return build_store(self.settings, embedder)

    def store(self) -> MemoryStore:
        """The open store (blocking until it is)."""
        self.start()
        return self._store.result()

    async def astore(self) -> MemoryStore:
        self.start()
        return await self._store.aresult()

    # -- recall and context ------------------------------------------------------------

    async def recall(self, text: str, namespace: str | None = None,
                     now: float | None = None) -> list[Recalled]:
        store = await self.astore()
        return await asyncio.to_thread(guarded, store.recall, text, now or time.time(), namespace)

    async def might_know(self, query: Query) -> bool:
        """ContextSource: whether some memory shares a word with the question (the lexical
        index, read-only: milliseconds, no model, no Chroma)."""
        path = self.settings.home / "memory" / "lexical.sqlite3"
        return await asyncio.to_thread(shares_a_word, path, query.namespace, query.text)

    async def context_for(self, query: Query) -> Recollection:
        """ContextSource: memories close enough in meaning, preferences and recent turns,
        compiled to the budget. Everything heavy (embedding, search, reading journals,
        counting tokens) runs in worker threads, never on the event loop."""
        store = await self.astore()
        now = time.time()
        hits = await asyncio.to_thread(guarded, store.recall, query.text, now, query.namespace)
        hits = relevant(hits, store.params)
        preferences = await asyncio.to_thread(guarded, self._preferences, store, query, now)
        turns = await asyncio.to_thread(self._session_turns, query)
        compiler = ContextCompiler(self.config.token_budget, self._counter(),
                                   self._summariser())
        self.last_context = await compiler.compile(items_for(hits, preferences, turns,
                                                                   query.text))
        return Recollection(self.last_context.text, told_facts(hits, self.last_context))

    def _preferences(self, store: MemoryStore, query: Query, now: float) -> list[Recalled]:
        found = store.records(query.namespace, where={"preference": True})
        newest = sorted(found, key=lambda r: -r.timestamp)[:PREFERENCES]
        return [Recalled(record=r, score=0.0, similarity=0.0, decay=1.0) for r in newest]

    def _session_turns(self, query: Query) -> list[MemoryRecord]:
        if not query.session_id or not self.config.recent_turns:
            return []
        shown = {m.content for m in query.history}
        turns = [t for t in self.sessions.turns(query.session_id) if t.query not in shown]
        return [MemoryRecord(id=t.id, query=t.query, response=t.answer, timestamp=t.timestamp)
                for t in turns[-self.config.recent_turns:]]

    def _later_model(self) -> ModelEntry | None:
        if self.manifest is None:
            return None
        stages = self.settings.config.stages
        return self.manifest.resolve(stages[-1].persona).model if stages else None

    def _counter(self) -> Any:
        model = self._later_model()

        async def count(text: str) -> int:
            if self.manager is None or model is None:
                return await asyncio.to_thread(estimate_tokens, text)
            return await self.manager.count_tokens(model, text)  # the backend uses a thread

        return count

    def _summariser(self) -> Any:
        if self.manager is None or self.manifest is None:
            return None
        quick = self.manifest.resolve("quick")
        manager = self.manager

        async def summarise(notes: str, budget: int) -> str:
            request = ChatRequest(
                model=quick.model,
                messages=(Message("system", "Summarise these notes about a person in a few "
                                            "short, complete sentences. Keep names and numbers."),
                          Message("user", notes)),
                options=quick.options.merged(SamplingOptions(max_tokens=budget, temperature=0.2)))
            pieces = [e.text async for e in manager.stream_chat(request)
                      if isinstance(e, TextPiece)]
            return "".join(pieces).strip()

        return summarise

    # -- remembering -------------------------------------------------------------------

    async def answer_finished(self, record: AnswerRecord) -> None:
        """AnswerSink: queue the exchange for the writer; never waits for the disk."""
        done = record.done
        if done.status == "error" or not done.answer:
            return
        query = record.query
        if not query.text.strip():
            return  # nothing was said: nothing to remember
        self.remember(MemoryRecord(
            id=done.answer_id, query=query.text, response=done.answer,
            namespace=query.namespace, session_id=query.session_id or "",
            chain=record.plan.chain or ",".join(s.name for s in record.plan.stages),
            answers={name: a.text for name, a in done.answers.items() if a.text}))

    def remember(self, record: MemoryRecord) -> None:
        """Queue one exchange to be stored in the background (each text field cut to
        `records.MAX_FIELD_CHARS`, see `MemoryRecord.bounded`)."""
        if self._closed:
            raise MemoryStoreError("memory is closed; open a new Memory to remember more")
        self.start()
        self._ensure_writer()
        self._queue.put(record)

    def _ensure_writer(self) -> None:
        with self._opening:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop,
                                                name="mirador-memory-writer", daemon=True)
                self._writer.start()
                _flush_at_exit(self)

    def _write_loop(self) -> None:
        while (record := self._queue.get()) is not _STOP:
            try:
                self._write(record)
            except BaseException as exc:  # reported by flush(), in the caller's thread
                self._errors.append(exc)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _write(self, record: MemoryRecord) -> None:
        store = self._store.result()
        guarded(store.add, [record])
        if record.session_id:
            self.sessions.append(record.session_id, Turn(record.id, record.query,
                                                         record.response, record.timestamp))
            self.sessions.set_last(record.session_id)

    def flush(self) -> None:
        """Wait until every queued exchange is stored; raise the first failure."""
        if self._writer is not None:
            self._queue.join()
        if self._errors:
            error = self._errors.pop(0)
            self._errors.clear()
            if isinstance(error, MemoryStoreError):  # each such error is its message alone
                raise type(error)(f"not remembered: {error}") from error
            if isinstance(error, MiradorError):
                raise error
            raise MemoryStoreError(f"could not store a memory ({error})") from error

    async def aclose(self) -> None:
        """Flush pending writes and stop the writer (safe to call twice)."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._queue.put(_STOP)
                self._writer.join()
                _LIVE.discard(self)
            if (store := self._store.loaded()) is not None:
                store.close()

    # -- control ----------------------------------------------------------------------

    def set_rating(self, answer_id: str, rating: int | None) -> bool:
        """Put a rating (1-5, or None to clear) on the memory of an answer."""
        self.flush()
        return bool(guarded(self.store().set_rating, answer_id, rating))


_LIVE: weakref.WeakSet[Memory] = weakref.WeakSet()
_HOOK = threading.Lock()


def _flush_at_exit(memory: Memory) -> None:
    """Flush `memory` when the interpreter exits, if nobody closed it.

    The hook runs where `concurrent.futures` runs its own: before the interpreter stops
    threads and executors, which opening the store (chromadb) still needs.
    """
    with _HOOK:
        if not _LIVE and not getattr(_flush_all, "registered", False):
            before_threads_stop(_flush_all)
            _flush_all.registered = True  # type: ignore[attr-defined]
        _LIVE.add(memory)


def _flush_all() -> None:
    for memory in list(_LIVE):
        try:
            memory.flush()
        except MiradorError as exc:  # the process is ending: say what was lost, then go
            print(f"mirador: error: {exc}", file=sys.stderr)


def guarded(function: Any, *args: Any) -> Any:
    """Run a store call, translating the store library's errors into MemoryStoreError."""
    try:
        return function(*args)
    except MiradorError:
        raise
    except Exception as exc:
        raise MemoryStoreError(f"the memory store failed ({type(exc).__name__}: {exc}); "
                               "'mirador memory ls' checks that it opens") from exc
