"""How recalled memories are ranked: meaning and words fused by rank, then age and updates.

Every signal is general; none knows any particular memory or question:

- dense: cosine between the query and a blend of the person's own words (weight
  `query_weight`) and the whole exchange. What the person said is what a memory is
  about; the reply adds detail but drifts. The blend is stored as one vector.
- lexical: BM25 over the whole exchange (`lexical.LexicalIndex`): exact names, codes
  and rare words that a small sentence model blurs.
- fusion: reciprocal-rank fusion of the two rankings, sum of w / (k + rank) over the
  lists a memory appears in (Cormack et al., 2009). Ranks, not raw scores, so neither
  scale dominates; the score is divided by its maximum, so 1.0 means first in both.
- decay: a memory's weight falls with age towards `decay_floor`, halving its span
  every `half_life_days`; old memories still count, newer ones count more.
- supersession: an older memory on the same subject as a newer one (their exchanges'
  vectors close) is what the newer one updates, so it loses up to `supersede_penalty`
  of its score, in proportion to how close the two are.

Search always returns the top `limit`, with scores. Only the context compiler gates
what it injects into a prompt, by dense similarity (`inject_similarity`, see
`relevant`), calibrated on questions with nothing relevant stored.
The defaults are chosen on the tuning half of bench/data/recall_set.json
(`python bench/recall.py --tune`) and reported on its held-out half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mirador.memory.records import MemoryRecord, Recalled

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RankingParams:
    """The knobs of the ranking; defaults chosen on the tuning half in bench/recall.py."""

    half_life_days: float = 90.0
    decay_floor: float = 0.9
    query_weight: float = 0.7
    rrf_k: float = 60.0
    lexical_weight: float = 0.5
    supersede_penalty: float = 0.2
    supersede_from: float = 0.5  # doc-vector cosine where "same subject" starts to count
    supersede_full: float = 0.95  # ... and where it counts fully
    inject_similarity: float = 0.35
    limit: int = 5


@dataclass(frozen=True)
class Candidate:
    """A memory either index returned, with what ranking needs."""

    record: MemoryRecord
    similarity: float  # dense cosine to the query
    lexical: float | None  # BM25 score, None when no query word matched
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


def fuse(similarity: np.ndarray, lexical: Sequence[float | None],
         params: RankingParams) -> np.ndarray:
    """Reciprocal-rank fusion of the dense and lexical rankings, scaled so 1.0 is the top."""
    k, w = params.rrf_k, params.lexical_weight
    dense_rank = np.empty(len(similarity))
    dense_rank[np.argsort(-similarity, kind="stable")] = np.arange(1, len(similarity) + 1)
    fused = 1.0 / (k + dense_rank)
    matched = [i for i, score in enumerate(lexical) if score is not None]
    matched.sort(key=lambda i: -float(lexical[i]))  # type: ignore[arg-type]
    for rank, index in enumerate(matched, start=1):
        fused[index] += w / (k + rank)
    result: np.ndarray = fused * (k + 1.0) / (1.0 + w)
    return result


def rank(candidates: Sequence[Candidate], now: float, params: RankingParams) -> list[Recalled]:
    """Score and order `candidates` as of `now` (epoch seconds); the best `limit` of them."""
    if not candidates:
        return []
    similarity = np.array([c.similarity for c in candidates], dtype=np.float64)
    fused = fuse(similarity, [c.lexical for c in candidates], params)
    ages = np.array([(now - c.record.timestamp) / SECONDS_PER_DAY for c in candidates])
    weights = decay(ages, params)
    superseded = _supersession(candidates, params)
    scores = fused * weights * (1.0 - params.supersede_penalty * superseded)
    order = np.argsort(-scores, kind="stable")[: params.limit]
    return [Recalled(record=candidates[i].record, score=float(scores[i]),
                     similarity=float(similarity[i]), decay=float(weights[i]),
                     superseded=float(superseded[i]), lexical=candidates[i].lexical or 0.0)
            for i in order]


def relevant(hits: Sequence[Recalled], params: RankingParams) -> list[Recalled]:
    """The hits close enough in meaning to put into a prompt (the context compiler's gate)."""
    return [h for h in hits if h.similarity >= params.inject_similarity]


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
