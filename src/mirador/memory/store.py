"""The memory store: exchanges kept in ChromaDB, one pair of collections per namespace,
and a lexical (BM25) index beside them.

Each namespace has a collection of memories, searched by the blended vector
(see `ranking`), and a companion searched by each memory's whole-exchange vector.
Keeping namespaces apart keeps every search unfiltered, which is what keeps it fast.
The lexical index (`lexical.py`, memory/lexical.sqlite3) is derived from Chroma
and rebuilt for a namespace whose contents disagree with it; beside the text it
keeps what ranking reads of each memory (words, time, both vectors), so a recall
reads its candidates there in one query, and only the hits it returns from Chroma.

Forgetting erases: from Chroma's answers, from its write-ahead queue, full-text
index and free pages (`erase.py`), and from the lexical index.

The store is blocking and thread-safe; `mirador.memory.memory` runs it off the
event loop. By default it is a `PersistentClient` under the Mirador home; with
`memory.chroma_server` set, the same code talks to a Chroma server over HTTP.
Telemetry is off either way: nothing leaves the machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mirador.embeddings import Embedder
from mirador.errors import EmbedderChanged, MemoryStoreError
from mirador.memory import erase, reindex
from mirador.memory.files import check_store_files
from mirador.memory.lexical import Entry, LexicalIndex, Stored
from mirador.memory.phrasing import as_statement
from mirador.memory.private_apis import close_client
from mirador.memory.ranking import Candidate, RankingParams, blend, rank
from mirador.memory.records import MemoryRecord, Recalled
from mirador.settings import ChromaServerConfig, Settings

CANDIDATES = 50  # memories each index returns, for ranking to reorder
_KIND = "mirador-memory"
_BATCH = 500


def memory_dir(settings: Settings) -> Path:
    return settings.home / "memory"


def open_store(settings: Settings, embedder: Embedder, params: RankingParams) -> MemoryStore:
    """The store as configured: Chroma (files under the home, or a server) and the lexical
    index under the home; an erase a crash interrupted is finished first."""
    directory = memory_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    local = settings.config.memory.chroma_server is None
    store = MemoryStore(open_client(settings), embedder, params,
                        lexical=LexicalIndex(directory / "lexical.sqlite3"),
                        chroma_dir=directory / "chroma" if local else None,
                        erase_dir=directory)
    if erase.pending(directory):
        store.finish_erase()
    for namespace, records in reindex.pending(directory):
        store.rewrite(namespace, records)
    return store


def open_client(settings: Settings) -> Any:
    """A Chroma client as configured: files under the home, or a server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    quiet = ChromaSettings(anonymized_telemetry=False)
    server = settings.config.memory.chroma_server
    try:
        if server is not None:
            return _http_client(chromadb, server, quiet)
        path = memory_dir(settings) / "chroma"
        check_store_files(path)  # an empty or foreign file is reported, never replaced
        path.mkdir(parents=True, exist_ok=True)
        with across_processes(path):  # two first runs at once would both build the schema
            return chromadb.PersistentClient(path=str(path), settings=quiet)
    except MemoryStoreError:
        raise
    except Exception as exc:  # chromadb raises many types; translate at the edge
        raise MemoryStoreError(f"cannot open the memory store ({type(exc).__name__}: {exc}); "
                               "check memory settings in config.yaml") from None


@contextmanager
def across_processes(chroma_dir: Path | None) -> Iterator[None]:
    """Hold the home's Chroma lock (a file beside Chroma's): creating a client or a
    collection is not safe when two processes do it at once on the same files."""
    if chroma_dir is None:  # a server serialises its own work
        yield
        return
    with open(chroma_dir.parent / "chroma.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _http_client(chromadb: Any, server: ChromaServerConfig, quiet: Any) -> Any:
    try:
        return chromadb.HttpClient(host=server.host, port=server.port, ssl=server.ssl,
                                   settings=quiet)
    except Exception as exc:
        raise MemoryStoreError(f"cannot reach the Chroma server at {server.host}:{server.port} "
                               f"({exc}); start it (chroma run --host {server.host} --port "
                               f"{server.port}) or remove memory.chroma_server") from None


def query_vector(embedder: Embedder, text: str, params: RankingParams) -> np.ndarray:
    """The vector a recall searches with: the question's, mixed with the statement that
    would answer it (`phrasing.as_statement`, weighted `statement_weight`) when it is one."""
    statement = as_statement(text) if params.statement_weight > 0.0 else None
    if statement is None:
        return embedder.embed([text])[0]
    question, told = embedder.embed([text, statement])
    mixed = (1.0 - params.statement_weight) * question + params.statement_weight * told
    result: np.ndarray = (mixed / max(float(np.linalg.norm(mixed)), 1e-12)).astype(np.float32)
    return result


def collection_name(namespace: str, kind: str) -> str:
    """A valid Chroma name for a namespace (any text) and a kind ('mem' or 'doc')."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", namespace).strip("-")[:40] or "ns"
    digest = hashlib.sha1(namespace.encode()).hexdigest()[:8]
    return f"mirador-{kind}-{slug}-{digest}"


class MemoryStore:
    """Adds, finds, lists and forgets memories in Chroma."""

    def __init__(self, client: Any, embedder: Embedder, params: RankingParams,
                 lexical: LexicalIndex | None = None, chroma_dir: Path | None = None,
                 erase_dir: Path | None = None) -> None:
        """`lexical` defaults to an in-memory index (rebuilt from Chroma on first use);
        `chroma_dir`, Chroma's local files, is scrubbed after a forget; `erase_dir` holds
        the marker of an erase in progress."""
        self.client = client
        self.embedder = embedder
        self.params = params
        self.lexical = lexical or LexicalIndex()
        self.chroma_dir = chroma_dir
        self.erase_dir = erase_dir
        self._lock = threading.Lock()
        self._collections: dict[tuple[str, str], Any] = {}
        self._synced: set[str] = set()
        self._same_model: set[str] = set()  # namespaces whose vectors the embedder made
        self.check_embedder = True  # off only where vectors are not embeddings (benchmarks)

    def close(self) -> None:
        """Release the client (the last client of a path or server closes its connections)."""
        with self._lock:
            self._collections.clear()
        self.lexical.close()
        self._close_client()
        if self.chroma_dir is not None:  # after Chroma's last write: see erase.py
            erase.scrub_segments(self.chroma_dir)

    def _close_client(self) -> None:
        """Close the client's connections (chromadb's HTTP clients never close their pools
        themselves: see `private_apis`)."""
        close_client(self.client)

    # -- collections -------------------------------------------------------------

    def _collection(self, namespace: str, kind: str, create: bool) -> Any | None:
        key = (namespace, kind)
        with self._lock:
            if key not in self._collections:
                found = self._open_collection(namespace, kind, create)
                if found is None:
                    return None
                self._collections[key] = found
            return self._collections[key]

    def _open_collection(self, namespace: str, kind: str, create: bool) -> Any | None:
        name = collection_name(namespace, kind)
        if not create:
            if name not in {c.name for c in self.client.list_collections()}:
                return None
            return self.client.get_collection(name)
        with across_processes(self.chroma_dir):
            return self.client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "ip"}},
                metadata={"kind": _KIND, "namespace": namespace, "vectors": kind})

    def namespaces(self) -> list[str]:
        """Every namespace that has memories."""
        found = set()
        for collection in self.client.list_collections():
            meta = collection.metadata or {}
            if meta.get("kind") == _KIND and meta.get("vectors") == "mem":
                found.add(str(meta["namespace"]))
        return sorted(found)

    # -- writing -------------------------------------------------------------------

    def add(self, records: Sequence[MemoryRecord]) -> None:
        """Store `records` (replacing any with the same id in their namespace)."""
        by_namespace: dict[str, list[MemoryRecord]] = {}
        for record in records:
            by_namespace.setdefault(record.namespace, []).append(record.bounded())
        for namespace in by_namespace:  # all or nothing: no namespace written, then refused
            self._check_model(namespace)
        for namespace, group in by_namespace.items():
            for start in range(0, len(group), _BATCH):
                self._add_batch(namespace, group[start:start + _BATCH])

    def _add_batch(self, namespace: str, records: Sequence[MemoryRecord]) -> None:
        queries = self.embedder.embed([r.query for r in records])
        docs = self.embedder.embed([r.document for r in records])
        self.add_vectors(namespace, records, queries, docs)

    def add_vectors(self, namespace: str, records: Sequence[MemoryRecord],
                    query_vectors: np.ndarray, doc_vectors: np.ndarray) -> None:
        """Store records whose vectors are already computed (imports, benchmarks)."""
        ids = [r.id for r in records]
        mem: Any = self._collection(namespace, "mem", create=True)
        doc: Any = self._collection(namespace, "doc", create=True)
        self._sync(namespace)
        searched = blend(query_vectors, doc_vectors, self.params)
        docs = np.asarray(doc_vectors, dtype=np.float32)  # what Chroma keeps
        # the companion first: a memory is searchable only once both are written; the
        # lexical index last, since it is rebuilt from Chroma if a crash comes between
        # (a replaced memory leaves it first: a crash must leave the two apart, which
        # the next open mends, never the index holding the old words and vectors)
        self.lexical.remove(namespace, ids)
        doc.upsert(ids=ids, embeddings=docs)
        mem.upsert(ids=ids, embeddings=searched, documents=[r.document for r in records],
                   metadatas=[r.to_metadata() for r in records])
        self.lexical.add(namespace, [Entry.of(r, searched[k], docs[k])
                                     for k, r in enumerate(records)])
        if self.chroma_dir is not None:  # Chroma may have flushed uninitialised memory
            erase.scrub_segments(self.chroma_dir)

    def _sync(self, namespace: str) -> None:
        """Rebuild the namespace's lexical index from Chroma if the two disagree (checked
        once per store: a crash between the two writes is the only way they can)."""
        if namespace in self._synced:
            return
        mem = self._collection(namespace, "mem", create=False)
        count = mem.count() if mem is not None else 0
        if self.lexical.count(namespace) != count:
            self.lexical.replace_namespace(namespace, self._entries(namespace, mem))
        self._synced.add(namespace)

    def _entries(self, namespace: str, mem: Any) -> list[Entry]:
        """The namespace's memories as the lexical index keeps them, read from Chroma."""
        if mem is None:
            return []
        got = mem.get(include=["documents", "metadatas", "embeddings"])
        companion = self._collection(namespace, "doc", create=False)
        found = (companion.get(include=["embeddings"]) if companion is not None
                 else {"ids": [], "embeddings": []})
        docs = _by_id(found["ids"], found["embeddings"])
        return [Entry(i, text, str(meta.get("query", "")), float(meta.get("ts", 0.0)),
                      np.asarray(search, dtype=np.float32), docs[i])
                for i, text, meta, search in zip(got["ids"], got["documents"], got["metadatas"],
                                                 got["embeddings"], strict=True) if i in docs]

    def _check_model(self, namespace: str) -> None:
        """Refuse a namespace whose memories another model embedded (once per namespace:
        the shortest stored exchange is embedded again and compared, see `reindex`)."""
        if namespace in self._same_model or not self.check_embedder:
            return
        if self._collection(namespace, "mem", create=False) is not None:
            self._sync(namespace)
        sample = self.lexical.sample(namespace)
        if sample is not None:
            text, stored = sample
            now = self.embedder.embed([text])[0]
            if not reindex.same_model(stored, now):
                why = (f"their vectors have {stored.shape[0]} dimensions, the model's "
                       f"{now.shape[0]}" if stored.shape != now.shape else
                       "it gives a stored memory another vector than it was stored with")
                raise EmbedderChanged(
                    f"the memories in namespace '{namespace}' were embedded by another model "
                    f"than the one memory.embedder names now ({why}); run 'mirador memory "
                    "reindex' to embed them again with it (every memory is kept), or set "
                    "memory.embedder and memory.embedder_model back")
        self._same_model.add(namespace)

    def reindex(self, namespace: str | None = None) -> dict[str, int]:
        """Embed every memory (of a namespace) again with this store's embedder; returns
        how many memories each namespace has. A crash midway is finished at the next open."""
        done = {}
        for name in [namespace] if namespace else self.namespaces():
            records = list(self.records(name))
            if self.erase_dir is not None:
                reindex.write_journal(self.erase_dir, name, records)
            self.rewrite(name, records)
            done[name] = len(records)
        return done

    def rewrite(self, namespace: str, records: Sequence[MemoryRecord]) -> None:
        """Make the namespace hold exactly `records`, embedded anew (its collections and
        index dropped first); the journal of an interrupted reindex is removed after."""
        for kind in ("mem", "doc"):
            if self._collection(namespace, kind, create=False) is not None:
                self.client.delete_collection(collection_name(namespace, kind))
            with self._lock:
                self._collections.pop((namespace, kind), None)
        self.lexical.drop_namespace(namespace)
        self._synced.discard(namespace)
        self._same_model.discard(namespace)
        self.add(records)
        if self.erase_dir is not None:
            reindex.remove(reindex.journal_path(self.erase_dir, namespace))

    def set_rating(self, memory_id: str, rating: int | None) -> bool:
        """Record a rating (1-5) on a memory; False when no memory has that id."""
        found = self.get(memory_id)
        if found is None:
            return False
        mem = self._collection(found.namespace, "mem", create=False)
        assert mem is not None
        mem.update(ids=[memory_id], metadatas=[found.with_rating(rating).to_metadata()])
        return True

    def forget(self, memory_ids: Iterable[str]) -> int:
        """Erase these memories from every file the store keeps; returns how many existed."""
        wanted = sorted(set(memory_ids))
        if not wanted:
            return 0
        self._begin_erase()
        gone = 0
        for namespace in self.namespaces():
            mem: Any = self._collection(namespace, "mem", create=False)
            present = mem.get(ids=wanted, include=[])["ids"] if mem is not None else []
            if present:
                mem.delete(ids=present)
                doc = self._collection(namespace, "doc", create=False)
                if doc is not None:
                    doc.delete(ids=present)
                gone += len(present)
            self.lexical.remove(namespace, wanted)
        self.finish_erase()
        return gone

    def forget_all(self) -> int:
        """Erase every memory in every namespace."""
        count = self.count()
        self._begin_erase()
        for collection in self.client.list_collections():
            if (collection.metadata or {}).get("kind") == _KIND:
                self.lexical.drop_namespace(str((collection.metadata or {})["namespace"]))
                self.client.delete_collection(collection.name)
        with self._lock:
            self._collections.clear()
        self.finish_erase()
        return count

    def _begin_erase(self) -> None:
        if self.erase_dir is not None:
            erase.mark(self.erase_dir)

    def finish_erase(self) -> None:
        """Scrub what deletions leave on disk (Chroma's queue, full-text index and free
        pages; the lexical index's) and clear the erase marker."""
        self._synced.clear()
        for namespace in self.namespaces():
            self._sync(namespace)  # drops what an interrupted forget left in the index
        if self.chroma_dir is not None:
            erase.purge_chroma(self.chroma_dir)
        self.lexical.compact()
        if self.erase_dir is not None:
            erase.done(self.erase_dir)

    # -- reading -------------------------------------------------------------------

    def get(self, memory_id: str) -> MemoryRecord | None:
        for namespace in self.namespaces():
            mem = self._collection(namespace, "mem", create=False)
            got = mem.get(ids=[memory_id], include=["metadatas"]) if mem else {"ids": []}
            if got["ids"]:
                return MemoryRecord.from_metadata(got["ids"][0], got["metadatas"][0])
        return None

    def count(self, namespace: str | None = None) -> int:
        total = 0
        for name in [namespace] if namespace else self.namespaces():
            mem = self._collection(name, "mem", create=False)
            total += mem.count() if mem else 0
        return total

    def records(self, namespace: str | None = None,
                where: dict[str, Any] | None = None) -> Iterator[MemoryRecord]:
        """Every memory (of a namespace, or matching `where`), oldest first."""
        found: list[MemoryRecord] = []
        for name in [namespace] if namespace else self.namespaces():
            mem = self._collection(name, "mem", create=False)
            if mem is None:
                continue
            got = mem.get(where=where, include=["metadatas"])
            found.extend(MemoryRecord.from_metadata(i, m)
                         for i, m in zip(got["ids"], got["metadatas"], strict=True))
        yield from sorted(found, key=lambda r: (r.timestamp, r.id))

    def session_turns(self, session_id: str) -> list[MemoryRecord]:
        """The stored exchanges of one session, oldest first."""
        return list(self.records(where={"session_id": session_id}))

    def recall(self, text: str, now: float, namespace: str | None = None,
               params: RankingParams | None = None) -> list[Recalled]:
        """The memories that bear on `text`, best first, with their scores."""
        return self._whole(rank(self.candidates(text, namespace), now, params or self.params))

    def _whole(self, hits: list[Recalled]) -> list[Recalled]:
        """`hits` with their whole records from Chroma (candidates carry only what ranking
        reads); a hit forgotten meanwhile is left out."""
        wanted: dict[str, list[str]] = {}
        for hit in hits:
            wanted.setdefault(hit.record.namespace, []).append(hit.record.id)
        whole: dict[str, MemoryRecord] = {}
        for namespace, ids in wanted.items():
            mem = self._collection(namespace, "mem", create=False)
            got = mem.get(ids=ids, include=["metadatas"]) if mem is not None else {"ids": []}
            whole.update((i, MemoryRecord.from_metadata(i, m))
                         for i, m in zip(got["ids"], got["metadatas"] or [], strict=True))
        return [replace(h, record=whole[h.record.id]) for h in hits if h.record.id in whole]

    def candidates(self, text: str, namespace: str | None = None) -> list[Candidate]:
        """What the indexes return for `text`, before ranking (benchmarks rank them often);
        each candidate's record holds what ranking reads (no answer: `recall` reads the
        whole records of the memories it returns)."""
        vector = query_vector(self.embedder, text, self.params)
        namespaces = [namespace] if namespace else self.namespaces()
        return [c for name in namespaces for c in self._candidates(name, text, vector)]

    def _candidates(self, namespace: str, text: str, vector: np.ndarray) -> list[Candidate]:
        """The nearest memories by the whole exchange's vector (what plain vector search
        ranks by) and by the stored blended vector, and the lexical index's best; each with
        its dense similarities and BM25 score (None where no query word matched).

        The two nearest-neighbour queries and the lexical search run together (Chroma's
        bindings and SQLite release the GIL); then what ranking reads of every candidate
        (the person's words, time, both vectors) comes from the lexical index in one
        query: Chroma's gets by id, a row per metadata key, were most of a recall's time."""
        mem = self._collection(namespace, "mem", create=False)
        if mem is None:
            return []
        self._sync(namespace)
        self._check_model(namespace)
        by_blend = _lookups().submit(mem.query, query_embeddings=[vector], n_results=CANDIDATES,
                                     include=["distances"])
        by_words = _lookups().submit(self.lexical.search, namespace, text, CANDIDATES)
        nearest_docs = self._nearest_docs(namespace, vector)
        found, lexical = by_blend.result(), dict(by_words.result())
        similarity = dict(zip(found["ids"][0], (1.0 - float(d) for d in found["distances"][0]),
                              strict=True))
        stored = self._stored(namespace, mem, [*similarity, *nearest_docs, *lexical])
        extra = [i for i in stored if i not in similarity]  # hits of the other indexes
        # in float64, as with the vectors Chroma's gets return (so scores stay as they were)
        similarity.update((i, float(np.dot(vector, stored[i].search.astype(np.float64))))
                          for i in extra)
        return [Candidate(record=stored[i].record, similarity=similarity[i],
                          lexical=lexical.get(i), doc_vector=stored[i].doc,
                          doc_similarity=float(stored[i].doc @ vector))
                for i in [*found["ids"][0], *extra] if i in stored]

    def _nearest_docs(self, namespace: str, vector: np.ndarray) -> list[str]:
        """The memories whose whole exchange is nearest the query: plain vector search's
        answer, so ranking always sees what it would have returned."""
        doc = self._collection(namespace, "doc", create=False)
        if doc is None:
            return []
        found = doc.query(query_embeddings=[vector], n_results=CANDIDATES, include=["distances"])
        return list(found["ids"][0])

    def _stored(self, namespace: str, mem: Any, ids: list[str]) -> dict[str, Stored]:
        """What ranking reads of these memories, from the lexical index; from Chroma for
        any it does not hold yet (another process's write between the two)."""
        wanted = list(dict.fromkeys(ids))
        stored = self.lexical.stored(namespace, wanted)
        absent = [i for i in wanted if i not in stored]
        if absent:
            got = mem.get(ids=absent, include=["metadatas", "embeddings"])
            docs = self._doc_vectors(namespace, list(got["ids"]))
            stored.update((i, Stored(MemoryRecord.from_metadata(i, m),
                                     np.asarray(v, dtype=np.float32), docs[i]))
                          for i, m, v in zip(got["ids"], got["metadatas"], got["embeddings"],
                                             strict=True) if i in docs)
        return stored

    def _doc_vectors(self, namespace: str, ids: list[str]) -> dict[str, np.ndarray]:
        doc = self._collection(namespace, "doc", create=False)
        if doc is None or not ids:
            return {}
        got = doc.get(ids=ids, include=["embeddings"])
        return _by_id(got["ids"], got["embeddings"])


def _by_id(ids: Sequence[str], vectors: Sequence[Any]) -> dict[str, np.ndarray]:
    """Chroma's vectors by memory id, as float32 arrays."""
    return {i: np.asarray(v, dtype=np.float32) for i, v in zip(ids, vectors, strict=True)}


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _lookups() -> ThreadPoolExecutor:
    """The threads Chroma's concurrent lookups run on (two, made at first use)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="mirador-recall"))
        return _POOL[0]
