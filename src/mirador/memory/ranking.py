"""How recalled memories are ranked: which memories answer is decided by meaning (and a
bounded bonus for words); age and updates only reorder those, never choose them.

Every signal is general; none knows any particular memory or question:

- dense: cosine between the query and a mix of the person's own words
  (`match_query_weight`) and the whole exchange. The index stores a blend of the two
  vectors (`query_weight`) to find candidates; the companion collection keeps the
  exchange's own vector, so ranking can weigh the two as measured, without re-indexing.
- lexical: BM25 over the whole exchange (`lexical.LexicalIndex`): exact names, codes
  and rare words that a small sentence model blurs. BM25 is unbounded and its scale
  depends on the query, so it enters as a saturated bonus, `lexical_weight` *
  bm25 / (bm25 + `lexical_saturation`): a strong word match can lift a memory past
  one that is a little closer in meaning, never past one that is much closer.
  (Reciprocal-rank fusion, tried first, threw away how much closer in meaning the
  first memory was, and lost to plain vector search on the held-out half.)
- age: a memory loses at most `age_weight` (in cosine units) as it ages, half of it
  after `half_life_days`: enough to order two memories that answer alike, too little
  to reorder memories that do not.
- supersession: an older memory on the same subject as a newer one (their exchanges'
  vectors at least `supersede_from` in cosine) that answers the question nearly as well
  (at most `supersede_margin` lower, after age) is what the newer one updates: it ranks
  just below the newer one, and no further. A newer memory far less relevant, or on
  another subject, updates nothing.

Which memories recall returns is decided by relevance alone (dense plus the lexical
bonus): the best `limit`. Age and supersession only order those; neither brings in a
memory from below nor evicts one, so recall@k is the relevance ranking's, and with the
tuned defaults (no own-words mix, no word bonus: neither helped on the tuning half) that
is plain cosine to the whole exchange: what plain vector search returns. (An update from
below used to join and take the place of the memory it superseded; on the tuning half
that evicted 72 memories from the top five, 71 of them not superseded at all but merely
alike, as templated exchanges are; it won one supersession case and put recall@5 at the
mercy of which memories happen to look alike.)

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
_BELOW = 1e-3  # how far under the memory that supersedes it a superseded one ranks


@dataclass(frozen=True)
class RankingParams:
    """The knobs of the ranking; defaults chosen on the tuning half in bench/recall.py."""

    half_life_days: float = 90.0
    age_weight: float = 0.04  # the most age can take off a score (cosine units)
    query_weight: float = 0.7  # in the stored search vector (fixed when a memory is written)
    match_query_weight: float = 0.0  # in the similarity that ranks (0: the exchange alone)
    lexical_weight: float = 0.0  # the most a word match can add (cosine units)
    lexical_saturation: float = 5.0  # the BM25 score that earns half of it
    supersede_from: float = 0.5  # doc-vector cosine where "same subject" starts
    supersede_margin: float = 0.1  # how much less relevant a newer memory may be
    inject_similarity: float = 0.439
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


def freshness(ages_days: np.ndarray, params: RankingParams) -> np.ndarray:
    """1 for a memory written now, halving every `half_life_days` (never above 1)."""
    ages = np.maximum(ages_days, 0.0)
    result: np.ndarray = np.power(0.5, ages / params.half_life_days)
    return result


def dense(candidate: Candidate, params: RankingParams) -> float:
    """The similarity that ranks: the query's words and the whole exchange, reweighted."""
    if candidate.doc_similarity is None:
        return candidate.similarity
    w0, w = params.query_weight, params.match_query_weight
    own_words = (candidate.similarity - (1.0 - w0) * candidate.doc_similarity) / w0
    return float(w * own_words + (1.0 - w) * candidate.doc_similarity)


def lexical_bonus(lexical: Sequence[float | None], params: RankingParams) -> np.ndarray:
    """The saturated BM25 bonus: 0 without a word match, below `lexical_weight` always."""
    bm25 = np.array([max(score or 0.0, 0.0) for score in lexical], dtype=np.float64)
    result: np.ndarray = params.lexical_weight * bm25 / (bm25 + params.lexical_saturation)
    return result


def rank(candidates: Sequence[Candidate], now: float, params: RankingParams) -> list[Recalled]:
    """Score and order `candidates` as of `now` (epoch seconds): the best `limit` by
    relevance (meaning, and words), ordered by relevance, age and updates."""
    if not candidates:
        return []
    similarity = np.array([dense(c, params) for c in candidates], dtype=np.float64)
    relevance = similarity + lexical_bonus([c.lexical for c in candidates], params)
    ages = np.array([(now - c.record.timestamp) / SECONDS_PER_DAY for c in candidates])
    fresh = freshness(ages, params)
    aged = relevance - params.age_weight * (1.0 - fresh)
    chosen = [int(i) for i in np.argsort(-relevance, kind="stable")[: params.limit]]
    scores, superseded = _supersede(aged, _links(candidates, aged, params), chosen)
    order = sorted(chosen, key=lambda i: (-scores[i], i))
    return [Recalled(record=candidates[i].record, score=float(scores[i]),
                     similarity=float(similarity[i]), decay=float(fresh[i]),
                     superseded=float(superseded[i]), lexical=candidates[i].lexical or 0.0)
            for i in order]


def relevant(hits: Sequence[Recalled], params: RankingParams) -> list[Recalled]:
    """The hits close enough in meaning to put into a prompt (the context compiler's gate)."""
    return [h for h in hits if h.similarity >= params.inject_similarity]


def _supersede(scores: np.ndarray, links: np.ndarray, chosen: list[int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Scores with each chosen superseded memory moved just below the most relevant
    chosen newer memory that updates it (as little as puts the update first), and how far
    each one moved."""
    moved = scores.copy()
    inside = np.zeros(len(scores), dtype=bool)
    inside[chosen] = True
    for older in chosen:
        newer = links[older] & inside
        if newer.any():
            moved[older] = min(scores[older], float(scores[newer].max()) - _BELOW)
    return moved, scores - moved


def _links(candidates: Sequence[Candidate], scores: np.ndarray,
           params: RankingParams) -> np.ndarray:
    """links[i, j]: newer memory j updates older memory i (same subject, answers the
    question nearly as well)."""
    count = len(candidates)
    links = np.zeros((count, count), dtype=bool)
    known = [i for i, c in enumerate(candidates) if c.doc_vector is not None]
    if len(known) < 2:
        return links
    vectors = np.vstack([candidates[i].doc_vector for i in known])  # type: ignore[misc]
    times = np.array([candidates[i].record.timestamp for i in known])
    near = scores[known]
    same = ((vectors @ vectors.T >= params.supersede_from)
            & (times[None, :] > times[:, None])
            & (near[None, :] >= near[:, None] - params.supersede_margin))
    links[np.ix_(known, known)] = same
    return links
