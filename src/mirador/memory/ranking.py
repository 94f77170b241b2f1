"""How recalled memories are ranked: meaning, age, supersession, and exact names.

Every signal is general; none knows any particular memory:

- similarity: cosine against a blend of the person's own words (weight 0.7) and the
  whole exchange (0.3). What the person said is what a memory is about; the reply
  adds detail but drifts (advice on cutting "cloud spend" is not about cloud bills).
  The blend is stored as one vector, so the store's inner product gives it exactly.
- decay: weight falls with age towards a floor, halving its span every
  `half_life_days`; old memories still count, newer ones count more.
- supersession: an older memory on the same subject as a newer one (their exchanges'
  vectors close) is what the newer one updates, so it loses up to a fifth of its
  score, in proportion to how close the two are.
- keyword: names, numbers and identifiers the query spells out (Kyoto, D-28, S3)
  that a small sentence model blurs add a bonus when a memory spells them too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mirador.memory.records import MemoryRecord, Recalled

SECONDS_PER_DAY = 86_400.0
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.]*[A-Za-z0-9]|[A-Za-z0-9]")


@dataclass(frozen=True)
class RankingParams:
    """The knobs of the ranking; defaults measured in bench/recall.py."""

    half_life_days: float = 365.0
    decay_floor: float = 0.5
    query_weight: float = 0.7
    supersede_penalty: float = 0.2
    supersede_from: float = 0.5  # doc-vector cosine where "same subject" starts to count
    supersede_full: float = 0.95  # ... and where it counts fully
    keyword_bonus: float = 0.05
    min_relevance: float = 0.2
    limit: int = 5


@dataclass(frozen=True)
class Candidate:
    """A memory the vector index returned, with what ranking needs."""

    record: MemoryRecord
    similarity: float
    doc_vector: np.ndarray | None


def blend(query_vectors: np.ndarray, doc_vectors: np.ndarray, params: RankingParams) -> np.ndarray:
    """The stored search vector: the person's words weighted over the whole exchange."""
    w = params.query_weight
    blended: np.ndarray = (w * query_vectors + (1.0 - w) * doc_vectors).astype(np.float32)
    return blended


def decay(ages_days: np.ndarray, params: RankingParams) -> np.ndarray:
    floor = params.decay_floor
    ages = np.maximum(ages_days, 0.0)
    result: np.ndarray = floor + (1.0 - floor) * np.power(0.5, ages / params.half_life_days)
    return result


def rank(query: str, candidates: Sequence[Candidate], now: float,
         params: RankingParams) -> list[Recalled]:
    """Score, order and cut `candidates` for `query` as of `now` (epoch seconds)."""
    if not candidates:
        return []
    similarity = np.array([c.similarity for c in candidates], dtype=np.float64)
    ages = np.array([(now - c.record.timestamp) / SECONDS_PER_DAY for c in candidates])
    weights = decay(ages, params)
    superseded = _supersession(candidates, params)
    keyword = _keyword(query, candidates) * params.keyword_bonus
    scores = (similarity + keyword) * weights * (1.0 - params.supersede_penalty * superseded)
    order = np.argsort(-scores, kind="stable")
    hits = [Recalled(record=candidates[i].record, score=float(scores[i]),
                     similarity=float(similarity[i]), decay=float(weights[i]),
                     superseded=float(superseded[i]), keyword=float(keyword[i])) for i in order]
    return [h for h in hits if h.score >= params.min_relevance][: params.limit]


def _supersession(candidates: Sequence[Candidate], params: RankingParams) -> np.ndarray:
    """How strongly a newer candidate on the same subject updates each one (0..1)."""
    known = [i for i, c in enumerate(candidates) if c.doc_vector is not None]
    strength = np.zeros(len(candidates))
    if len(known) < 2:
        return strength
    vectors = np.vstack([candidates[i].doc_vector for i in known])  # type: ignore[misc]
    times = np.array([candidates[i].record.timestamp for i in known])
    closeness = vectors @ vectors.T
    span = params.supersede_full - params.supersede_from
    link = np.clip((closeness - params.supersede_from) / span, 0.0, 1.0)
    link = link * (times[None, :] > times[:, None])  # only a newer memory supersedes
    strength[known] = link.max(axis=1)
    return strength


def salient_terms(text: str) -> set[str]:
    """Names, numbers and identifiers: capitalised inside a sentence, or with digits."""
    terms: set[str] = set()
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        for position, word in enumerate(_WORD.findall(sentence)):
            has_digit = any(ch.isdigit() for ch in word)
            named = word[0].isupper() and position > 0 and word.lower() not in {"i", "i'm"}
            if has_digit or named or (word.isupper() and len(word) > 1):
                terms.add(word.lower())
    return terms


def _keyword(query: str, candidates: Sequence[Candidate]) -> np.ndarray:
    terms = salient_terms(query)
    if not terms:
        return np.zeros(len(candidates))
    found = []
    for candidate in candidates:
        words = {w.lower() for w in _WORD.findall(candidate.record.document)}
        found.append(len(terms & words) / len(terms))
    return np.array(found)
