"""The ratings database: every answer's query type, chain, timings and outcome, and its ratings.

One SQLite file under the Mirador home (`learning.db`), in WAL mode so the
server can log answers while `mirador rate` writes from another process. Every
sqlite error is translated here into a `LearningStoreError` that names the file
and what to do; a file that cannot be read is never written to or replaced.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirador.errors import LearningStoreError, RatingError
from mirador.learning import dna as dna_table
from mirador.learning.migrations import migrate, transaction

DB_NAME = "learning.db"
RATING_RANGE = range(1, 6)


@dataclass(frozen=True)
class StageTiming:
    stage: str
    model: str
    status: str
    seconds: float
    ttft: float | None
    tokens: int
    tokens_per_second: float | None


@dataclass(frozen=True)
class AnswerLog:
    """One finished answer, as the learner keeps it."""

    answer_id: str
    query: str
    domain: str
    complexity: str
    query_type: str
    chain: str | None
    status: str
    created_at: float = field(default_factory=time.time)
    chosen_by: str = "caller"
    session_id: str | None = None
    namespace: str = "default"
    seconds: float | None = None
    ttft: float | None = None
    tokens: int | None = None
    stages: tuple[StageTiming, ...] = ()
    choice: dict[str, Any] | None = None
    embedding: np.ndarray | None = None
    embedding_model: str | None = None
    profile: str | None = None  # the energy profile it ran under
    energy_j: float | None = None
    energy_method: str | None = None


@dataclass(frozen=True)
class Rating:
    """A rating as stored, with what it rated."""

    answer_id: str
    rating: int
    note: str | None
    rated_at: float
    query_type: str
    chain: str | None


class LearningStore:
    """The SQLite file of answers and ratings; safe to share between threads."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> LearningStore:
        """Open (or create) the database at `path` and bring its schema up to date."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        except sqlite3.Error as exc:
            raise _unreadable(path, exc) from None
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA foreign_keys = ON")
            migrate(db, str(path))
        except sqlite3.Error as exc:
            db.close()
            raise _unreadable(path, exc) from None
        except LearningStoreError:
            db.close()
            raise
        return cls(db, path)

    @classmethod
    def in_home(cls, home: Path) -> LearningStore:
        return cls.open(home / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise _unreadable(self.path, exc) from None

    # -- writing ---------------------------------------------------------------

    def record_answer(self, log: AnswerLog) -> None:
        """Keep one finished answer and its stage timings."""
        blob = None if log.embedding is None else np.asarray(log.embedding, "<f4").tobytes()
        choice = None if log.choice is None else json.dumps(log.choice)
        with self._using() as db, transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO answers (answer_id, created_at, query, session_id, "
                "namespace, domain, complexity, query_type, chain, status, seconds, ttft, tokens, "
                "chosen_by, choice_json, embedding, embedding_model, profile, energy_j, "
                f"energy_method) VALUES ({', '.join('?' * 20)})",
                (log.answer_id, log.created_at, log.query, log.session_id, log.namespace,
                 log.domain, log.complexity, log.query_type, log.chain, log.status, log.seconds,
                 log.ttft, log.tokens, log.chosen_by, choice, blob, log.embedding_model,
                 log.profile, log.energy_j, log.energy_method))
            db.execute("DELETE FROM stage_timings WHERE answer_id = ?", (log.answer_id,))
            db.executemany(
                "INSERT INTO stage_timings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(log.answer_id, i, s.stage, s.model, s.status, s.seconds, s.ttft, s.tokens,
                  s.tokens_per_second) for i, s in enumerate(log.stages)])

    def add_rating(self, answer_id: str | None, rating: int, note: str | None = None,
                   rated_at: float | None = None) -> Rating:
        """Rate an answer (the last one when `answer_id` is None); earlier ratings are kept."""
        check_rating(rating)
        with self._using() as db, transaction(db):
            row = self._find_answer(db, answer_id)
            when = time.time() if rated_at is None else rated_at
            db.execute("INSERT INTO ratings (answer_id, rating, note, rated_at) "
                       "VALUES (?, ?, ?, ?)", (row["answer_id"], rating, note, when))
        return Rating(row["answer_id"], rating, note, when, row["query_type"], row["chain"])

    # -- forgetting --------------------------------------------------------------

    def forget_text(self, answer_ids: Iterable[str] | None) -> int:
        """Drop what these answers said (every answer's when None): the query, its embedding
        and the ratings' notes. Ratings, timings and chains stay, so learning keeps what it
        learned; then the file is rewritten so no copy of the text remains. Returns how
        many answers held text."""
        where, args = _ids_clause(answer_ids)
        with self._using() as db, transaction(db):
            found = db.execute(f"SELECT COUNT(*) FROM answers WHERE query != '' {where}",
                               args).fetchone()[0]
            db.execute(f"UPDATE answers SET query = '', embedding = NULL, "
                       f"embedding_model = NULL WHERE 1 {where}", args)
            db.execute(f"UPDATE ratings SET note = NULL WHERE 1 {where}", args)
        self.compact()
        return int(found)

    def queries(self, answer_ids: Iterable[str] | None) -> list[str]:
        """The stored query texts of these answers (of every answer when None)."""
        where, args = _ids_clause(answer_ids)
        with self._using() as db:
            rows = db.execute(f"SELECT query FROM answers WHERE query != '' {where}",
                              args).fetchall()
        return [row[0] for row in rows]

    def compact(self) -> None:
        """Rewrite the file and empty the write-ahead log, so deleted text is not left in
        free pages or old log frames."""
        with self._using() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise LearningStoreError(
                f"the ratings database {self.path} is in use by another process, so its log "
                "could not be emptied; the text is no longer readable through Mirador; run "
                "the same command again once the other Mirador is idle to erase every copy")

    # -- reading ---------------------------------------------------------------

    def answer(self, answer_id: str | None) -> AnswerLog:
        """An answer by id (or unique id prefix); the last answer when `answer_id` is None."""
        with self._using() as db:
            row = self._find_answer(db, answer_id)
            stages = db.execute("SELECT * FROM stage_timings WHERE answer_id = ? "
                                "ORDER BY position", (row["answer_id"],)).fetchall()
        return _answer_from_row(row, stages)

    def latest_ratings(self) -> list[Rating]:
        """Each rated answer's newest rating, oldest first: what the learner replays."""
        with self._using() as db:
            rows = db.execute(
                "SELECT r.answer_id, r.rating, r.note, r.rated_at, a.query_type, a.chain "
                "FROM ratings r JOIN answers a USING (answer_id) "
                "WHERE r.id = (SELECT MAX(id) FROM ratings WHERE answer_id = r.answer_id) "
                "ORDER BY r.id").fetchall()
        return [Rating(*tuple(row)) for row in rows]

    def ratings_of(self, answer_id: str) -> list[Rating]:
        """Every rating given to one answer, oldest first."""
        with self._using() as db:
            rows = db.execute(
                "SELECT r.answer_id, r.rating, r.note, r.rated_at, a.query_type, a.chain "
                "FROM ratings r JOIN answers a USING (answer_id) WHERE r.answer_id = ? "
                "ORDER BY r.id", (answer_id,)).fetchall()
        return [Rating(*tuple(row)) for row in rows]

    def rated_examples(self, min_rating: int, model: str) -> list[tuple[str, np.ndarray]]:
        """(domain, embedding) of answers rated at least `min_rating`: the person's history."""
        with self._using() as db:
            rows = db.execute(
                "SELECT a.domain, a.embedding FROM answers a JOIN ratings r USING (answer_id) "
                "WHERE r.id = (SELECT MAX(id) FROM ratings WHERE answer_id = a.answer_id) "
                "AND r.rating >= ? AND a.embedding IS NOT NULL AND a.embedding_model = ?",
                (min_rating, model)).fetchall()
        return [(row[0], np.frombuffer(row[1], dtype="<f4")) for row in rows]

    def rated_queries(self) -> list[tuple[str, str, int, str | None]]:
        """(answer id, query, newest rating, its note) of every rated answer whose text is
        kept, oldest first: what adapters train on (a forgotten answer has no query)."""
        with self._using() as db:
            rows = db.execute(
                "SELECT a.answer_id, a.query, r.rating, r.note FROM answers a "
                "JOIN ratings r USING (answer_id) WHERE a.query != '' AND "
                "r.id = (SELECT MAX(id) FROM ratings WHERE answer_id = a.answer_id) "
                "ORDER BY r.id").fetchall()
        return [(row[0], row[1], int(row[2]), row[3]) for row in rows]

    def ratings_since(self, when: float) -> int:
        """How many ratings were given after `when` (a time.time())."""
        with self._using() as db:
            row = db.execute("SELECT COUNT(*) FROM ratings WHERE rated_at > ?",
                             (when,)).fetchone()
        return int(row[0])

    def answers_table(self) -> list[dict[str, Any]]:
        """Every answer with its newest rating (or None), oldest first, for stats."""
        with self._using() as db:
            rows = db.execute(
                "SELECT a.answer_id, a.created_at, a.query, a.query_type, a.chain, a.chosen_by, "
                "a.status, "
                "a.seconds, a.ttft, a.profile, a.energy_j, a.energy_method, "
                "(SELECT rating FROM ratings WHERE answer_id = a.answer_id "
                "ORDER BY id DESC LIMIT 1) AS rating, (SELECT rated_at FROM ratings WHERE "
                "answer_id = a.answer_id ORDER BY id DESC LIMIT 1) AS rated_at "
                "FROM answers a ORDER BY a.created_at").fetchall()
        return [dict(row) for row in rows]

    def mean_joules(self, chains: Iterable[str]) -> dict[str, float]:
        """Each chain's mean joules per answer, over the answers that were measured."""
        wanted = list(chains)
        with self._using() as db:
            rows = db.execute(
                "SELECT chain, AVG(energy_j) FROM answers WHERE energy_j IS NOT NULL AND chain "
                f"IN ({', '.join('?' * len(wanted))}) GROUP BY chain", wanted).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    # -- Model DNA ---------------------------------------------------------------

    def dna(self) -> dna_table.Version:
        """The Model DNA in force (version 0: the neutral profile, never set)."""
        with self._using() as db:
            return dna_table.current(db)

    def save_dna(self, profile: dna_table.DNA, source: str, note: str = "") -> dna_table.Version:
        """Store a new Model DNA version: `source` is set, reset or learned."""
        with self._using() as db, transaction(db):
            return dna_table.save(db, profile, source, note)

    def dna_history(self) -> list[dna_table.Version]:
        with self._using() as db:
            return dna_table.history(db)

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits."""
        with self._using() as db:
            return int(db.execute("PRAGMA data_version").fetchone()[0])

    @staticmethod
    def _find_answer(db: sqlite3.Connection, answer_id: str | None) -> sqlite3.Row:
        if answer_id is None:
            row = db.execute("SELECT * FROM answers ORDER BY created_at DESC LIMIT 1").fetchone()
            if row is None:
                raise RatingError("there is no answer yet; ask something first "
                                  "(mirador ask \"...\"), then rate it")
            return row
        rows = db.execute("SELECT * FROM answers WHERE answer_id LIKE ? ESCAPE '\\' LIMIT 2",
                          (_like_prefix(answer_id),)).fetchall()
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise RatingError(f"no answer has the id '{answer_id}'; 'mirador stats' lists "
                              "recent answers, and no id rates the last one")
        raise RatingError(f"'{answer_id}' starts more than one answer id; give more of it")


def check_rating(rating: object) -> int:
    """The rating if it is a whole number from 1 to 5, else a RatingError."""
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATING_RANGE:
        raise RatingError(f"a rating is a whole number from 1 (bad) to 5 (excellent), "
                          f"not {rating!r}")
    return rating


def _ids_clause(answer_ids: Iterable[str] | None) -> tuple[str, tuple[str, ...]]:
    """An `AND answer_id IN (...)` clause for these ids; none (every answer) for None."""
    if answer_ids is None:
        return "", ()
    ids = tuple(answer_ids)
    if not ids:
        return "AND 0", ()
    return f"AND answer_id IN ({', '.join('?' * len(ids))})", ids


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _answer_from_row(row: sqlite3.Row, stages: list[sqlite3.Row]) -> AnswerLog:
    embedding = None if row["embedding"] is None else np.frombuffer(row["embedding"], "<f4")
    return AnswerLog(
        answer_id=row["answer_id"], query=row["query"], domain=row["domain"],
        complexity=row["complexity"], query_type=row["query_type"], chain=row["chain"],
        status=row["status"], created_at=row["created_at"], chosen_by=row["chosen_by"],
        session_id=row["session_id"], namespace=row["namespace"], seconds=row["seconds"],
        ttft=row["ttft"], tokens=row["tokens"],
        stages=tuple(StageTiming(*tuple(s)[2:]) for s in stages),
        choice=None if row["choice_json"] is None else json.loads(row["choice_json"]),
        embedding=embedding, embedding_model=row["embedding_model"], profile=row["profile"],
        energy_j=row["energy_j"], energy_method=row["energy_method"])


def _unreadable(path: Path, exc: sqlite3.Error) -> LearningStoreError:
    return LearningStoreError(
        f"the ratings database {path} cannot be used ({exc}). It has been left exactly as it "
        f"is: if another Mirador is writing to it, try again; if it is damaged, move it aside "
        f"(mv '{path}' '{path}.broken') and Mirador will start a fresh one")
