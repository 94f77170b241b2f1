"""How recalled memories are ranked: meaning and words fused by rank, then age and updates.

Every signal is general; none knows any particular memory or question:

- dense: cosine between the query and a weighted mix of the person's own words
  (`match_query_weight`) and the whole exchange. The index stores a blend of the two
  vectors (`query_weight`) to find candidates; the companion collection keeps the
  exchange's own vector, so ranking can weigh the two as measured, without re-indexing.
- lexical: BM25 over the whole exchange (`lexical.LexicalIndex`): exact names, codes
  and rare words that a small sentence model blurs.
- fusion: reciprocal-rank fusion of the two rankings, sum of w / (k + rank) over the
  lists a memory appears in (Cormack et al., 2009). Ranks, not raw scores, so neither
  scale dominates; the score is divided by its maximum, so 1.0 means first in both.
- decay: a memory's weight falls with age towards `decay_floor`, halving its span
  every `half_life_days`; old memories still count, newer ones count more.
- supersession: an older memory on the same subject as a newer one (their exchanges'
  vectors close) is what the newer one updates, so it loses up to `supersede_penalty`
  of its score, in proportion to how close the two are and to how well the newer one
  answers the question compared with the older.

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
    decay_floor: float = 0.8
    query_weight: float = 0.7  # in the stored search vector (fixed when a memory is written)
    match_query_weight: float = 0.0  # in the similarity that ranks (0: the exchange alone)
    rrf_k: float = 20.0
    lexical_weight: float = 0.15
    supersede_penalty: float = 0.4
    supersede_from: float = 0.5  # doc-vector cosine where "same subject" starts to count
    supersede_full: float = 0.95  # ... and where it counts fully
    inject_similarity: float = 0.44
    limit: int = 5


@dataclass(frozen=True)
class Candidate:
    """A memory either index returned, with what ranking needs."""

    record: MemoryRecord
    similarity: float  # cosine of the query to the stored (blended) search vector
    lexical: float | None  # BM25 score, None when no query word matched
    doc_vector: np.ndarray | None
    doc_similarity: float | None = None  # cosine of the query to the whole exchange


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


def dense(candidate: Candidate, params: RankingParams) -> float:
    """The similarity that ranks: the query's words and the whole exchange, reweighted."""
    if candidate.doc_similarity is None:
        return candidate.similarity
    w0, w = params.query_weight, params.match_query_weight
    own_words = (candidate.similarity - (1.0 - w0) * candidate.doc_similarity) / w0
    return float(w * own_words + (1.0 - w) * candidate.doc_similarity)


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
    similarity = np.array([dense(c, params) for c in candidates], dtype=np.float64)
    fused = fuse(similarity, [c.lexical for c in candidates], params)
    ages = np.array([(now - c.record.timestamp) / SECONDS_PER_DAY for c in candidates])
    weights = decay(ages, params)
    superseded = _supersession(candidates, similarity, params)
    scores = fused * weights * (1.0 - params.supersede_penalty * superseded)
    order = np.argsort(-scores, kind="stable")[: params.limit]
    return [Recalled(record=candidates[i].record, score=float(scores[i]),
                     similarity=float(similarity[i]), decay=float(weights[i]),
                     superseded=float(superseded[i]), lexical=candidates[i].lexical or 0.0)
            for i in order]


def relevant(hits: Sequence[Recalled], params: RankingParams) -> list[Recalled]:
    """The hits close enough in meaning to put into a prompt (the context compiler's gate)."""
    return [h for h in hits if h.similarity >= params.inject_similarity]


def _supersession(candidates: Sequence[Candidate], similarity: np.ndarray,
                  params: RankingParams) -> np.ndarray:
    """How strongly a newer candidate on the same subject updates each one (0..1): by how
    close the two exchanges are, times how well the newer one answers the query compared
    with the older (a newer memory that is not about the question updates nothing)."""
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
    sims = np.maximum(similarity[known], 1e-6)
    link = link * np.clip(sims[None, :] / sims[:, None], 0.0, 1.0)
    strength[known] = link.max(axis=1)
    return strength
