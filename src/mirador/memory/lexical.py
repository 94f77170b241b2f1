"""The lexical index: BM25 over every stored exchange, kept in SQLite FTS5.

A small sentence model blurs exact names and codes ("OPS-4312", "Juniper", "Martin
D-28"); BM25 ranks them. SQLite's FTS5 is a maintained BM25 implementation (Okapi
BM25, k1 = 1.2, b = 0.75, Porter stemming) that updates in place: adding or
forgetting one memory never rebuilds the index, and a 100,000-memory search takes a
few milliseconds.

Durability comes from SQLite: every write is one transaction with a rollback
journal, so a SIGKILL leaves the whole batch or none of it. The index is derived
from the vector store (the source of truth): `MemoryStore` compares the two on
first use and rebuilds a namespace whose contents disagree (a write or forget cut
short between the two).

Beside the text, each row keeps what ranking reads of a memory (the person's words,
when it was said, its search and whole-exchange vectors as Chroma holds them), so a
recall reads its candidates in one indexed query rather than in several Chroma gets
(which keep metadata a row per key, and took most of a recall's time). An index written before those
columns existed is emptied when opened (the `ranking fields` migration) and rebuilt
from Chroma on first use, like any index that disagrees with it.

Forgetting erases: rows are deleted with `secure_delete` on, the FTS index is
merged so no segment keeps a deleted term, and the file is vacuumed so no freed
page keeps the text.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mirador.memory.phrasing import is_told
from mirador.memory.records import MemoryRecord

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS docs (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, "
    "namespace TEXT NOT NULL, query TEXT NOT NULL, ts REAL NOT NULL, search BLOB NOT NULL, "
    "doc BLOB NOT NULL, UNIQUE (namespace, id))",
    "CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5(text, tokenize='porter unicode61')")
_TOKEN = re.compile(r"\w+", re.UNICODE)
# English function words: they match nearly every memory and only slow the search.
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be
because been before being below between both but by can could did do does doing down during
each few for from further had has have having he her here hers herself him himself his how i
if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yourself
yourselves i'm im ive id us let get got please tell know one also may might must shall
like want need much many well way thing things something anything really yes ok okay""".split())  # noqa: SIM905 (a list literal reads worse)


@dataclass(frozen=True)
class Entry:
    """One memory as the index keeps it: its text, and what ranking reads of it."""

    id: str
    text: str  # the whole exchange, searched by BM25
    query: str  # the person's words
    timestamp: float
    search: np.ndarray  # the stored search vector (float32, as in Chroma's collection)
    doc: np.ndarray  # the whole exchange's vector (float32, as in the companion)

    @classmethod
    def of(cls, record: MemoryRecord, search: np.ndarray, doc: np.ndarray) -> Entry:
        return cls(record.id, record.document, record.query, record.timestamp, search, doc)


@dataclass(frozen=True)
class Stored:
    """What ranking reads of one memory: its record (the person's words and time; the
    answer left empty) and its two vectors."""

    record: MemoryRecord
    search: np.ndarray
    doc: np.ndarray


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _drop_unranked(db: sqlite3.Connection) -> None:
    """Empty an index written before rows kept the ranking fields; the store rebuilds
    each namespace from Chroma on first use (its count no longer agrees)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(docs)")}
    if columns and "search" not in columns:
        db.execute("DROP TABLE docs")
        db.execute("DROP TABLE IF EXISTS terms")


# Ordered, named schema changes; PRAGMA user_version counts those applied.
_MIGRATIONS = (("ranking fields", _drop_unranked),)


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this file has not had, each in one transaction with the
    schema made current, so a crash leaves the index before or after one of them."""
    db.execute("BEGIN IMMEDIATE")
    try:
        done = int(db.execute("PRAGMA user_version").fetchone()[0])
        for _name, step in _MIGRATIONS[done:]:
            step(db)
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {max(done, len(_MIGRATIONS))}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def query_terms(text: str) -> list[str]:
    """The words of `text` worth matching: lower-cased, without function words, once each."""
    seen: dict[str, None] = {}
    for word in _TOKEN.findall(text.lower()):
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def match_any(text: str) -> str:
    """An FTS5 query matching any of `text`'s words worth matching ("" when none is)."""
    return " OR ".join(f'"{term}"' for term in query_terms(text))


def shares_a_word(path: Path, namespace: str, text: str) -> bool:
    """Whether something the person told (a statement, `phrasing.is_told`) in `namespace`
    shares a word worth matching with `text`, in their own words: what a first stage may
    be shown of memory (told facts), so whether it is worth waiting for recall. A
    read-only look in the index file at `path` that takes milliseconds and needs no model
    (False when there is no index yet, or it cannot be read). A question asked before,
    or an answer that used the word, is not worth the wait."""
    match = match_any(text)
    if not match or not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            rows = db.execute("SELECT docs.query FROM terms JOIN docs ON docs.rowid = "
                              "terms.rowid WHERE terms MATCH ? AND docs.namespace = ? "
                              "LIMIT ?", (match, namespace, _LOOK_AT)).fetchall()
        finally:
            db.close()
    except sqlite3.Error:  # being rebuilt, locked or damaged: recall reports it, not this
        return False
    wanted = {_stem(term) for term in query_terms(text)}
    return any(is_told(told) and wanted & {_stem(t) for t in query_terms(told)}
               for (told,) in rows)


_LOOK_AT = 2000  # memories sharing a word that the look reads at most


def _stem(word: str) -> str:
    """A crude stem, enough to say two words are one ("appointments", "appointment")."""
    return word.removesuffix("s")[:6]


class LexicalIndex:
    """BM25 search over memories' text, per namespace (thread-safe, blocking)."""

    def __init__(self, path: Path | None = None) -> None:
        """Open (or create) the index at `path`; None keeps it in memory only."""
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                   check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute("PRAGMA journal_mode = DELETE")  # no WAL file keeping old pages
        _migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, namespace: str, entries: Sequence[Entry]) -> None:
        """Index these memories (replacing any with the same id in the namespace)."""
        with self._write() as db:
            self._delete(db, namespace, [e.id for e in entries])
            self._insert(db, namespace, entries)

    @staticmethod
    def _insert(db: sqlite3.Connection, namespace: str, entries: Sequence[Entry]) -> None:
        for entry in entries:
            rowid = db.execute(
                "INSERT INTO docs (id, namespace, query, ts, search, doc) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (entry.id, namespace, entry.query, entry.timestamp, _blob(entry.search),
                 _blob(entry.doc))).lastrowid
            db.execute("INSERT INTO terms (rowid, text) VALUES (?, ?)", (rowid, entry.text))

    def remove(self, namespace: str, ids: Sequence[str]) -> int:
        """Delete these memories from the index; returns how many were there."""
        with self._write() as db:
            return self._delete(db, namespace, ids)

    def replace_namespace(self, namespace: str, entries: Sequence[Entry]) -> None:
        """Make the namespace hold exactly these memories (a rebuild from the vector store)."""
        with self._write() as db:
            rows = db.execute("SELECT rowid FROM docs WHERE namespace = ?", (namespace,))
            self._delete_rows(db, [r[0] for r in rows.fetchall()])
            self._insert(db, namespace, entries)

    def drop_namespace(self, namespace: str) -> None:
        self.replace_namespace(namespace, [])

    @staticmethod
    def _delete(db: sqlite3.Connection, namespace: str, ids: Sequence[str]) -> int:
        rowids = []
        for memory_id in ids:
            row = db.execute("SELECT rowid FROM docs WHERE namespace = ? AND id = ?",
                             (namespace, memory_id)).fetchone()
            if row is not None:
                rowids.append(row[0])
        LexicalIndex._delete_rows(db, rowids)
        return len(rowids)

    @staticmethod
    def _delete_rows(db: sqlite3.Connection, rowids: Sequence[int]) -> None:
        for rowid in rowids:
            db.execute("DELETE FROM terms WHERE rowid = ?", (rowid,))
            db.execute("DELETE FROM docs WHERE rowid = ?", (rowid,))

    def compact(self) -> None:
        """Erase what deletions left behind: merge the FTS segments, then vacuum the file."""
        with self._lock:
            self._db.execute("INSERT INTO terms (terms) VALUES ('optimize')")
            self._db.execute("VACUUM")

    # -- reading -----------------------------------------------------------------------

    def ids(self, namespace: str) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM docs WHERE namespace = ?", (namespace,))
            return {r[0] for r in rows.fetchall()}

    def count(self, namespace: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM docs WHERE namespace = ?",
                                   (namespace,)).fetchone()
            return int(row[0])

    def stored(self, namespace: str, ids: Sequence[str]) -> dict[str, Stored]:
        """What ranking reads of these memories, by id in the order they were indexed, in
        one indexed query; ids not indexed are absent."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, query, ts, search, doc FROM docs WHERE namespace = ? "
                f"AND id IN ({marks}) ORDER BY rowid", (namespace, *ids)).fetchall()
        return {i: Stored(MemoryRecord(id=i, query=q, response="", namespace=namespace,
                                       timestamp=ts),
                          np.frombuffer(search, dtype=np.float32),
                          np.frombuffer(doc, dtype=np.float32))
                for i, q, ts, search, doc in rows}

    def sample(self, namespace: str) -> tuple[str, np.ndarray] | None:
        """The shortest memory's whole exchange and its stored vector (None when empty):
        what the store embeds again to check that its model has not changed."""
        with self._lock:
            row = self._db.execute(
                "SELECT terms.text, docs.doc FROM docs JOIN terms ON terms.rowid = docs.rowid "
                "WHERE docs.namespace = ? ORDER BY length(terms.text), docs.rowid LIMIT 1",
                (namespace,)).fetchone()
        return None if row is None else (str(row[0]), np.frombuffer(row[1], dtype=np.float32))

    def search(self, namespace: str, text: str, limit: int) -> list[tuple[str, float]]:
        """The best `limit` memories of the namespace for `text`: (id, BM25 score), best first."""
        match = match_any(text)
        if not match:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT docs.id, bm25(terms) FROM terms JOIN docs ON docs.rowid = terms.rowid "
                "WHERE terms MATCH ? AND docs.namespace = ? ORDER BY bm25(terms) LIMIT ?",
                (match, namespace, limit)).fetchall()
        return [(memory_id, -float(score)) for memory_id, score in rows]
