"""What training learns from: rated 4-5, corrections, never forgotten exchanges."""

from __future__ import annotations

from contextlib import closing

from mirador.learning.store import LearningStore
from mirador.privacy import forget
from mirador.settings import Settings
from mirador.training.examples import correction, gather, split
from tests.training.conftest import STYLED, write_history


def test_only_answers_rated_4_or_5_are_gathered(settings: Settings) -> None:
    write_history(settings.home, STYLED[:3], rating=5, prefix="good")
    write_history(settings.home, STYLED[3:5], rating=2, prefix="bad")
    found = gather(settings)
    assert [e.answer_id for e in found] == ["good000", "good001", "good002"]
    assert found[0].query == STYLED[0][0] and found[0].answer == STYLED[0][1]


def test_a_better_note_is_trained_on_whatever_the_rating(settings: Settings) -> None:
    write_history(settings.home, STYLED[:1], rating=1)
    with closing(LearningStore.in_home(settings.home)) as store:
        store.add_rating("a000", 2, note="better: In short: Rome. That is all.")
    (found,) = gather(settings)
    assert (found.source, found.answer) == ("corrected", "In short: Rome. That is all.")
    assert correction("too long") is None
    assert correction("Correct: Paris") == "Paris"


def test_a_forgotten_exchange_is_never_trained_on(settings: Settings) -> None:
    ids = write_history(settings.home, STYLED[:4])
    forget(settings, [ids[1]])
    assert [e.answer_id for e in gather(settings)] == [ids[0], ids[2], ids[3]]


def test_the_split_is_fixed_by_its_seed(settings: Settings) -> None:
    write_history(settings.home, STYLED)
    found = gather(settings)
    train, held = split(found, 0.25, seed=0)
    again_train, again_held = split(list(reversed(found)), 0.25, seed=0)
    assert (train, held) == (again_train, again_held)
    assert len(held) == 2 and not set(held) & set(train)
