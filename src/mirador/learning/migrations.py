"""The ratings database's schema, changed only through ordered, named migrations.

Each migration runs once, in order, inside a transaction, and its name is
recorded in `_migrations`; a database that records a migration this code does
not know was written by a newer Mirador and is refused rather than guessed at.
Add a migration by appending a function to `MIGRATIONS`; never edit one that
has shipped.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mirador.errors import LearningStoreError

Migration = Callable[[sqlite3.Connection], None]


def m001_create_answers(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE answers (
            answer_id   TEXT PRIMARY KEY,
            created_at  REAL NOT NULL,
            query       TEXT NOT NULL,
            session_id  TEXT,
            namespace   TEXT NOT NULL DEFAULT 'default',
            domain      TEXT NOT NULL,
            complexity  TEXT NOT NULL,
            query_type  TEXT NOT NULL,
            chain       TEXT,
            status      TEXT NOT NULL,
            seconds     REAL,
            ttft        REAL,
            tokens      INTEGER
        )""")
    db.execute("CREATE INDEX answers_by_time ON answers (created_at)")


def m002_create_stage_timings(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE stage_timings (
            answer_id         TEXT NOT NULL REFERENCES answers (answer_id),
            position          INTEGER NOT NULL,
            stage             TEXT NOT NULL,
            model             TEXT NOT NULL,
            status            TEXT NOT NULL,
            seconds           REAL NOT NULL,
            ttft              REAL,
            tokens            INTEGER NOT NULL,
            tokens_per_second REAL,
            PRIMARY KEY (answer_id, position)
        )""")


def m003_create_ratings(db: sqlite3.Connection) -> None:
    # Every rating is kept: rating an answer again adds a row and the newest one counts.
    db.execute("""
        CREATE TABLE ratings (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            answer_id TEXT NOT NULL REFERENCES answers (answer_id),
            rating    INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
            note      TEXT,
            rated_at  REAL NOT NULL
        )""")
    db.execute("CREATE INDEX ratings_by_answer ON ratings (answer_id, id)")


def m004_add_choice_snapshot(db: sqlite3.Connection) -> None:
    """What the chooser knew when it chose: candidates, evidence and reason (JSON)."""
    db.execute("ALTER TABLE answers ADD COLUMN chosen_by TEXT NOT NULL DEFAULT 'caller'")
    db.execute("ALTER TABLE answers ADD COLUMN choice_json TEXT")


def m005_add_query_embedding(db: sqlite3.Connection) -> None:
    """The query's embedding, so the person's own history can teach the classifier."""
    db.execute("ALTER TABLE answers ADD COLUMN embedding BLOB")
    db.execute("ALTER TABLE answers ADD COLUMN embedding_model TEXT")


def m006_add_energy(db: sqlite3.Connection) -> None:
    """The energy profile an answer ran under and the joules it cost (and how measured)."""
    db.execute("ALTER TABLE answers ADD COLUMN profile TEXT")
    db.execute("ALTER TABLE answers ADD COLUMN energy_j REAL")
    db.execute("ALTER TABLE answers ADD COLUMN energy_method TEXT")


def m007_create_dna(db: sqlite3.Connection) -> None:
    """Model DNA, one row per version; the newest is in force (see mirador.learning.dna)."""
    db.execute("""
        CREATE TABLE dna (
            version    INTEGER PRIMARY KEY AUTOINCREMENT,
            profile    TEXT NOT NULL,
            source     TEXT NOT NULL,
            note       TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        )""")


MIGRATIONS: tuple[Migration, ...] = (
    m001_create_answers,
    m002_create_stage_timings,
    m003_create_ratings,
    m004_add_choice_snapshot,
    m005_add_query_embedding,
    m006_add_energy,
    m007_create_dna,
)


def applied(db: sqlite3.Connection) -> list[str]:
    """Names of the migrations this database has had, in order."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (position INTEGER PRIMARY KEY, "
               "name TEXT NOT NULL UNIQUE, applied_at REAL NOT NULL)")
    return _names(db)


def migrate(db: sqlite3.Connection, where: str) -> list[str]:
    """Run the migrations `db` has not had yet; return their names.

    Safe when several processes open a new database at once: each migration's check
    and run share one write transaction, so the first process runs it and the others,
    once they get the lock, see it recorded and skip it.
    """
    done = applied(db)
    _check_known(done, where)
    if len(done) == len(MIGRATIONS):
        return []  # up to date: no write lock needed
    ran = []
    for position, migration in enumerate(MIGRATIONS):
        with transaction(db):  # all of a migration or none of it
            done = _names(db)
            _check_known(done, where)
            if migration.__name__ in done:
                continue
            migration(db)
            db.execute("INSERT INTO _migrations (position, name, applied_at) VALUES (?, ?, ?)",
                       (position, migration.__name__, time.time()))
        ran.append(migration.__name__)
    return ran


def _names(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY position")]


def _check_known(done: list[str], where: str) -> None:
    known = [m.__name__ for m in MIGRATIONS]
    if done != known[:len(done)]:
        raise LearningStoreError(
            f"{where}: its schema ({', '.join(done)}) is not one this Mirador knows; it was "
            "probably written by a newer version. Upgrade Mirador, or move the file aside to "
            "start a fresh one (nothing in it is changed)")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (the connection is in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
