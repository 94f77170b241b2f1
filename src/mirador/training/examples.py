"""What an adapter learns from: the person's best-rated exchanges, and their corrections.

An exchange's query comes from the ratings database and its answer from the
session journals (`<home>/memory/sessions`); forgetting an exchange erases both,
so it is never trained on again. A rating's note that starts with `better:`
(or `correct:`) gives the answer the person wanted, which is trained on
whatever the rating was.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from mirador.learning.store import LearningStore
from mirador.memory.sessions import SessionLog
from mirador.settings import Settings

MIN_RATING = 4
_CORRECTION = re.compile(r"^\s*(better|correct(ed|ion)?)\s*:\s*(?P<text>\S.*)$",
                         re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Exchange:
    """One training example: a query and the answer to learn, with where it came from."""

    answer_id: str
    query: str
    answer: str
    source: str  # "rated" (rated 4-5) or "corrected" (a note's better answer)


def correction(note: str | None) -> str | None:
    """The better answer a rating note gives (`better: ...`), or None."""
    match = _CORRECTION.match(note or "")
    return match.group("text").strip() if match else None


def gather(settings: Settings, min_rating: int = MIN_RATING) -> list[Exchange]:
    """Every exchange to train on, oldest rating first; forgotten ones are gone already."""
    with closing(LearningStore.in_home(settings.home)) as store:
        rated = store.rated_queries()
    answers = journal_answers(settings.home / "memory" / "sessions")
    found = []
    for answer_id, query, rating, note in rated:
        better = correction(note)
        if better is not None:
            found.append(Exchange(answer_id, query, better, "corrected"))
        elif rating >= min_rating and answers.get(answer_id):
            found.append(Exchange(answer_id, query, answers[answer_id], "rated"))
    return found


def journal_answers(root: Path) -> dict[str, str]:
    """Answer id -> answer text, from every session journal."""
    log = SessionLog(root)
    found: dict[str, str] = {}
    for path in sorted(root.glob("*.jsonl")) if root.is_dir() else ():
        for turn in log.turns(path.stem):
            found[turn.id] = turn.answer
    return found


def split(exchanges: Sequence[Exchange], held_out: float = 0.25,
          seed: int = 0) -> tuple[list[Exchange], list[Exchange]]:
    """(train, held out): shuffled once by a fixed seed over the ids, so a run is repeatable
    and an exchange keeps its side as more are added only by chance, never by choice."""
    ordered = sorted(exchanges, key=lambda e: e.answer_id)
    random.Random(seed).shuffle(ordered)
    count = max(1, round(len(ordered) * held_out)) if len(ordered) >= 2 else 0
    return ordered[count:], ordered[:count]
