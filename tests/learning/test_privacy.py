"""The ratings database forgets text: the query, its embedding and notes go, the file is
rewritten so no copy remains, and what ratings taught stays. Migrations are safe when
several processes open a new database at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np

from mirador.learning.migrations import MIGRATIONS, applied
from mirador.learning.store import LearningStore
from tests.learning.test_store import answer

MARKER = "QQSECRETWORD77"


def _files_with(folder: Path, marker: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and marker.lower().encode() in p.read_bytes().lower())


def test_forget_text_leaves_no_copy_in_the_database_or_its_log(tmp_path: Path) -> None:
    store = LearningStore.open(tmp_path / "learning.db")
    vector = np.ones(8, dtype=np.float32)
    for i in range(30):  # enough pages that the text would survive in free pages
        store.record_answer(answer(f"a{i:02d}", query=f"question {i} about {MARKER}",
                                   embedding=vector, embedding_model="m"))
    store.record_answer(answer("keep", query="which bike should I buy"))
    store.add_rating("a03", 4, note=f"{MARKER} was spot on")
    assert _files_with(tmp_path, MARKER)  # the grep can fail
    assert store.forget_text([f"a{i:02d}" for i in range(30)]) == 30
    assert _files_with(tmp_path, MARKER) == []
    forgotten = store.answer("a03")
    assert (forgotten.query, forgotten.embedding, forgotten.embedding_model) == ("", None, None)
    assert [(r.answer_id, r.rating, r.note) for r in store.latest_ratings()] == [("a03", 4, None)]
    assert store.answer("keep").query == "which bike should I buy"
    assert store.queries(None) == ["which bike should I buy"]
    assert store.forget_text(["a03"]) == 0  # nothing left to drop
    store.close()


def test_forget_text_of_every_answer(tmp_path: Path) -> None:
    store = LearningStore.open(tmp_path / "learning.db")
    store.record_answer(answer("a1", query=f"one {MARKER}"))
    store.record_answer(answer("a2", query=f"two {MARKER}"))
    assert store.forget_text(None) == 2
    assert store.forget_text([]) == 0
    assert _files_with(tmp_path, MARKER) == []
    assert len(store.answers_table()) == 2
    store.close()


def _open_and_log(path: str, name: str) -> None:
    store = LearningStore.open(Path(path))
    store.record_answer(answer(name))
    store.close()


def test_processes_opening_a_new_database_at_once_all_keep_their_answer(tmp_path: Path) -> None:
    path = str(tmp_path / "learning.db")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_and_log, args=(path, f"p{i}")) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 6
    db = sqlite3.connect(path)
    assert applied(db) == [m.__name__ for m in MIGRATIONS]
    assert sorted(r[0] for r in db.execute("SELECT answer_id FROM answers")) == [
        f"p{i}" for i in range(6)]
    db.close()
