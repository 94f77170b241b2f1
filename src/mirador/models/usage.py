"""What past queries used, and how well preloading guessed: `<home>/models/usage.json`.

Each finished answer adds its query's words and the personas and base models
it ran on (the last 500 are kept), so a new query can be matched with similar
past ones. Each query that was predicted while typed adds to the preload
figures: models it needed, how many of those were predicted (the hit rate),
and how many predicted models it did not use.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirador.atomic import write_json_atomic

KEEP = 500
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]{2,}")
_STOP_WORDS = (
    "the and for you your with what how should can could would this that are was were have "
    "has had not but from about into over more most some any our its it's i'm me my we they "
    "them their there here when where which who why does did do is be a an of to in on at by "
    "or as if so")
_STOP = frozenset(_STOP_WORDS.split())


def words(text: str) -> frozenset[str]:
    """The words that say what a query is about (lower case, no stop words)."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


@dataclass(frozen=True)
class PastQuery:
    words: frozenset[str]
    personas: tuple[str, ...]
    models: tuple[str, ...]


@dataclass
class PreloadFigures:
    queries: int = 0  # answered queries that had a prediction
    needed: int = 0  # base models those queries ran on
    covered: int = 0  # ... of which had been predicted
    predicted: int = 0  # models predicted for them
    unused: int = 0  # ... that the answer did not use

    @property
    def hit_rate(self) -> float | None:
        return self.covered / self.needed if self.needed else None

    @property
    def precision(self) -> float | None:
        return (self.predicted - self.unused) / self.predicted if self.predicted else None


class UsageLog:
    def __init__(self, path: Path | None, keep_queries: bool = True) -> None:
        self.path = path
        self.keep_queries = keep_queries  # False (memory off): no query's words are written
        self.past: list[PastQuery] = []
        self.figures = PreloadFigures()
        self._read()

    def similar(self, text: str, threshold: float = 0.3,
                limit: int = 5) -> list[tuple[float, PastQuery]]:
        """Past queries sharing enough words with `text` (Jaccard), most similar first."""
        mine = words(text)
        if not mine:
            return []
        scored = [(len(mine & p.words) / len(mine | p.words), p) for p in self.past]
        return sorted((s for s in scored if s[0] >= threshold), key=lambda s: -s[0])[:limit]

    def record(self, text: str, personas: Iterable[str], models: Iterable[str]) -> None:
        if self.keep_queries:
            self.past.append(PastQuery(words(text), tuple(personas),
                                       tuple(dict.fromkeys(models))))
            del self.past[:-KEEP]
            self._write()

    def forget(self, texts: Iterable[str] | None) -> int:
        """Drop the past queries with these texts' words (every one when None); the file is
        rewritten at once (an OSError is raised: forgetting must not fail silently)."""
        gone = {words(t) for t in texts} if texts is not None else None
        kept = [p for p in self.past if gone is not None and p.words not in gone]
        dropped, self.past = len(self.past) - len(kept), kept
        if dropped and self.path is not None:
            write_json_atomic(self.path, self._data())
        return dropped

    def score(self, predicted: set[str], used: set[str]) -> None:
        """Count how a query's predicted models compare with the ones it ran on."""
        f = self.figures
        f.queries += 1
        f.needed += len(used)
        f.covered += len(used & predicted)
        f.predicted += len(predicted)
        f.unused += len(predicted - used)
        self._write()

    def _read(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.past = [PastQuery(frozenset(q["words"]), tuple(q["personas"]),
                                   tuple(q["models"])) for q in data.get("queries", [])]
            self.figures = PreloadFigures(**data.get("preload", {}))
        except (OSError, ValueError, TypeError, KeyError):
            self.past, self.figures = [], PreloadFigures()  # history is a hint: start afresh

    def _data(self) -> dict[str, Any]:
        return {"updated": time.time(), "preload": vars(self.figures),
                "queries": [{"words": sorted(p.words), "personas": list(p.personas),
                             "models": list(p.models)} for p in self.past]}

    def _write(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):  # losing a hint must never fail an answer
            write_json_atomic(self.path, self._data())
