"""The lexical index's cheap look: does any memory share a word with the question?"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.memory.lexical import Entry, LexicalIndex, shares_a_word
from mirador.memory.store import MemoryStore, memory_dir
from mirador.settings import Settings
from tests.memory.conftest import rec, reopen

_VECTOR = np.ones(4, dtype=np.float32)


def test_a_shared_word_is_found_read_only_and_only_in_its_namespace(tmp_path: Path) -> None:
    path = tmp_path / "lexical.sqlite3"
    index = LexicalIndex(path)
    text = "My dentist appointment is on Tuesday at 3pm."
    index.add("default", [Entry("m1", text, text, 1.0, _VECTOR, _VECTOR)])
    index.close()
    before = path.read_bytes()
    assert shares_a_word(path, "default", "When is my dentist appointment?")
    assert not shares_a_word(path, "work", "When is my dentist appointment?")
    assert not shares_a_word(path, "default", "Where does my sister live?")
    assert not shares_a_word(path, "default", "When is my ...?")  # function words only
    assert path.read_bytes() == before  # a look never writes


def test_only_what_the_person_told_is_worth_waiting_for(tmp_path: Path) -> None:
    """A first stage is shown only told facts, so a question asked before, or an answer
    that used the word, does not make it wait for recall."""
    path = tmp_path / "lexical.sqlite3"
    index = LexicalIndex(path)
    asked = "What should I focus on today?"
    index.add("default", [Entry("q1", f"{asked}\nFocus on one task today.", asked, 1.0,
                                _VECTOR, _VECTOR),
                          Entry("t1", "I sold my bike.\nCars cost more to run.",
                                "I sold my bike.", 2.0, _VECTOR, _VECTOR)])
    index.close()
    assert not shares_a_word(path, "default", "What should I focus on today?")
    assert not shares_a_word(path, "default", "Which car should I buy?")  # the answer's word
    assert shares_a_word(path, "default", "Where can I service my bikes?")  # told, a plural


def test_no_index_or_a_damaged_one_says_no(tmp_path: Path) -> None:
    assert not shares_a_word(tmp_path / "absent.sqlite3", "default", "my dentist")
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"not a database" * 100)
    assert not shares_a_word(damaged, "default", "my dentist")


_OLD_SCHEMA = """
CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, namespace TEXT NOT NULL,
                   UNIQUE (namespace, id));
CREATE VIRTUAL TABLE terms USING fts5(text, tokenize='porter unicode61');
"""


def _make_old_index(path: Path, rows: list[tuple[str, str]]) -> None:
    """An index as written before rows kept the ranking fields (no user_version)."""
    path.unlink()
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    for rowid, (memory_id, text) in enumerate(rows, start=1):
        db.execute("INSERT INTO docs VALUES (?, ?, 'default')", (rowid, memory_id))
        db.execute("INSERT INTO terms (rowid, text) VALUES (?, ?)", (rowid, text))
    db.commit()
    db.close()


def test_an_index_from_before_the_ranking_fields_is_rebuilt_from_chroma(
        settings: Settings, store: MemoryStore, minilm: MiniLMEmbedder) -> None:
    store.add([rec("c", "Project Juniper launches in July."), rec("d", "Lunch was nice.")])
    query = "When does Project Juniper launch?"
    now = time.time()
    before = store.recall(query, now)
    fields = store.lexical.stored("default", ["c", "d"])
    store.close()
    path = memory_dir(settings) / "lexical.sqlite3"
    _make_old_index(path, [("c", "Project Juniper launches in July."), ("d", "Lunch was nice.")])

    again = reopen(settings, minilm)
    assert again.lexical.count("default") == 0  # emptied by the migration...
    assert again.recall(query, now) == before  # ...and rebuilt from Chroma on use
    rebuilt = again.lexical.stored("default", ["c", "d"])
    assert [(f.record, f.search.tobytes(), f.doc.tobytes()) for f in rebuilt.values()] == [
        (f.record, f.search.tobytes(), f.doc.tobytes()) for f in fields.values()]
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == 1
    again.close()
    reopened = LexicalIndex(path)  # a current index is left as it is
    assert reopened.count("default") == 2
    reopened.close()
