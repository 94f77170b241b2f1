"""The ratings database: named migrations, round trips, and bad input that loses nothing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from mirador.errors import LearningStoreError, RatingError
from mirador.learning.migrations import MIGRATIONS, applied, migrate
from mirador.learning.store import AnswerLog, LearningStore, StageTiming


def answer(answer_id: str, chain: str | None = "rapid_decision", **extra: object) -> AnswerLog:
    fields: dict = {"answer_id": answer_id, "query": f"question {answer_id}", "domain": "finance",
                    "complexity": "simple", "query_type": "finance/simple", "chain": chain,
                    "status": "ok", **extra}
    return AnswerLog(**fields)


def test_migrations_run_once_in_order_and_are_recorded(tmp_path: Path) -> None:
    LearningStore.open(tmp_path / "l.db").close()
    db = sqlite3.connect(tmp_path / "l.db")
    assert applied(db) == [m.__name__ for m in MIGRATIONS]
    assert migrate(db, "l.db") == []  # nothing left to run
    columns = {row[1] for row in db.execute("PRAGMA table_info(answers)")}
    assert {"choice_json", "embedding", "chosen_by"} <= columns


def test_an_older_database_is_upgraded_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    applied(db)
    for position, migration in enumerate(MIGRATIONS[:3]):  # as an earlier Mirador left it
        migration(db)
        db.execute("INSERT INTO _migrations VALUES (?, ?, ?)",
                   (position, migration.__name__, time.time()))
    db.execute("INSERT INTO answers (answer_id, created_at, query, domain, complexity, "
               "query_type, chain, status) VALUES ('old1', 1.0, 'q', 'health', 'simple', "
               "'health/simple', 'auto', 'ok')")
    db.execute("INSERT INTO ratings (answer_id, rating, rated_at) VALUES ('old1', 4, 2.0)")
    db.close()
    store = LearningStore.open(path)
    assert store.answer("old1").chosen_by == "caller"  # the new column's default
    assert [r.rating for r in store.latest_ratings()] == [4]
    store.close()


def test_a_database_from_a_newer_mirador_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    LearningStore.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO _migrations VALUES (99, 'm099_from_the_future', 0)")
    before = path.read_bytes()
    with pytest.raises(LearningStoreError, match="newer version"):
        LearningStore.open(path)
    assert path.read_bytes() == before


def test_a_corrupt_database_is_reported_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"these are not the ratings you are looking for" * 100)
    before = path.read_bytes()
    with pytest.raises(LearningStoreError) as caught:
        LearningStore.open(path)
    message = str(caught.value)
    assert str(path) in message and "mv" in message and "left exactly as it is" in message
    assert path.read_bytes() == before


def test_answers_and_stage_timings_round_trip(store: LearningStore) -> None:
    vector = np.linspace(-1, 1, 8).astype(np.float32)
    stages = (StageTiming("quick", "smollm2-135m", "ok", 1.5, 0.2, 30, 25.0),
              StageTiming("decision_simplifier", "smollm2-135m", "timeout", 9.0, None, 3, None))
    store.record_answer(answer("a1", stages=stages, seconds=10.5, ttft=0.2, tokens=33,
                               choice={"decision": {"chain": "rapid_decision"}},
                               embedding=vector, embedding_model="m"))
    got = store.answer("a1")
    assert got.stages == stages and got.seconds == 10.5 and got.tokens == 33
    assert got.choice == {"decision": {"chain": "rapid_decision"}}
    assert got.embedding is not None and np.array_equal(got.embedding, vector)


@pytest.mark.parametrize("bad", [0, 6, -1, 3.5, True, "4", None])
def test_a_rating_out_of_range_is_refused_and_nothing_is_stored(store: LearningStore,
                                                                bad: object) -> None:
    store.record_answer(answer("a1"))
    with pytest.raises(RatingError, match="whole number from 1 .* to 5"):
        store.add_rating("a1", bad)  # type: ignore[arg-type]
    assert store.latest_ratings() == []


def test_an_unknown_answer_id_says_where_to_find_ids(store: LearningStore) -> None:
    with pytest.raises(RatingError, match="no answer yet"):
        store.add_rating(None, 4)
    store.record_answer(answer("abc123"))
    with pytest.raises(RatingError, match="no answer has the id 'zzz'.*mirador stats"):
        store.add_rating("zzz", 4)
    with pytest.raises(RatingError, match="no answer has the id"):
        store.add_rating("%", 4)  # a LIKE wildcard is a plain character here


def test_ids_may_be_shortened_when_unambiguous(store: LearningStore) -> None:
    store.record_answer(answer("abc123"))
    store.record_answer(answer("abd456"))
    assert store.add_rating("abc", 5).answer_id == "abc123"
    with pytest.raises(RatingError, match="more than one"):
        store.add_rating("ab", 5)


def test_the_last_answer_is_rated_by_default_and_rerating_keeps_history(
        store: LearningStore) -> None:
    store.record_answer(answer("first", created_at=1.0))
    store.record_answer(answer("second", created_at=2.0))
    assert store.add_rating(None, 2, note="meh").answer_id == "second"
    store.add_rating("second", 5, note="on reflection, great")
    assert [(r.rating, r.note) for r in store.ratings_of("second")] == [
        (2, "meh"), (5, "on reflection, great")]
    assert [(r.answer_id, r.rating) for r in store.latest_ratings()] == [("second", 5)]


def test_another_connection_sees_ratings_and_bumps_the_data_version(tmp_path: Path) -> None:
    one, two = LearningStore.open(tmp_path / "l.db"), LearningStore.open(tmp_path / "l.db")
    one.record_answer(answer("a1"))
    version = one.data_version()
    two.add_rating("a1", 3)
    assert one.data_version() != version
    assert [r.rating for r in one.latest_ratings()] == [3]
    one.close()
    two.close()
