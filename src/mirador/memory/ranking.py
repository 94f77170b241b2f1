"""How recalled memories are ranked: which memories answer is decided by meaning (with
bounded bonuses for words and for what the person told), and by updates of those; age
only reorders them.

Every signal is general; none knows any particular memory or question:

- dense: cosine between the query (the question's vector mixed with its statement
  form's, `statement_weight`, see `store.query_vector`) and a mix of the person's own words
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
- told: what the person told (a statement: "I switched to a Pixel 8") earns
  `told_weight` over what they asked the assistant (a question or a request,
  `phrasing.is_told`): a question about the person's life is answered by what they said
  about it, rarely by a question they once asked. It counts in which memories are
  chosen, never in the injection gate.
- age: a memory loses at most `age_weight` (in cosine units) as it ages, half of it
  after `half_life_days`: enough to order two memories that answer alike, too little
  to reorder memories that do not.
- supersession: an older memory on the same subject as a newer one (their exchanges'
  vectors at least `supersede_from` in cosine) that answers the question nearly as well
  (at most `supersede_margin` lower, after age) is what the newer one updates: it ranks
  just below the newer one, and no further. A newer memory far less relevant, or on
  another subject, updates nothing.
- updates from below: a chosen memory the person told is updated by the statement
  told after it that is closest to it, when that one is on the same subject (exchange
  vectors at least `supersede_from` in cosine); if that update is not among the chosen,
  it joins just above the memory it updates, in place of the least relevant chosen
  memory below that one (`update_depth`: the best few chosen bring theirs). Only a
  statement updates a statement, and only its nearest later one: an update of any later
  memory merely alike (as templated exchanges are) used to evict memories that were not
  superseded at all. (Tried and dropped: a second hop, fetching into the candidates the
  later memories nearest each of the best statements, since an update often shares
  neither words nor meaning with the question and no index returns it. Tuning half:
  recall@1 0.720 -> 0.731, recall@5 0.882 -> 0.903, supersession 0.85 -> 0.95, for about
  2.4 ms a recall at 10,000; held-out half, one look: recall@5 0.798 -> 0.775, recall@1
  and supersession unchanged, so it only helped the tuning half.)

Which memories recall returns is decided by relevance (dense, the lexical bonus and the
told bonus): the best `limit`, and updates from below. Age and supersession otherwise only
order those.

Search always returns the top `limit`, with scores. Only the context compiler gates
what it injects into a prompt, by dense similarity (`inject_similarity`, see
`relevant`), calibrated on questions with nothing relevant stored.
The defaults are chosen on the tuning half of bench/data/recall_set.json
(`python bench/recall.py --tune`: the grid point whose objective, averaged with its
neighbours', is best) and reported on its held-out half. Last tuned after the set gained
statement distractors (other people's news, passing remarks): match_query_weight 0.4,
lexical_weight 0.06, supersede_margin 0.15, update_depth 2, inject_similarity 0.449 were
taken from the grid. `age_weight` keeps its designed 0.04: the set's timestamps are
random, so it cannot value recency (the grid, indifferent, chose 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mirador.memory.phrasing import is_told
from mirador.memory.records import MemoryRecord, Recalled

SECONDS_PER_DAY = 86_400.0
_BELOW = 1e-3  # how far under the memory that supersedes it a superseded one ranks


@dataclass(frozen=True)
class RankingParams:
    """The knobs of the ranking; defaults chosen on the tuning half in bench/recall.py."""

    half_life_days: float = 90.0
    age_weight: float = 0.04  # the most age can take off a score (cosine units)
    query_weight: float = 0.7  # in the stored search vector (fixed when a memory is written)
    match_query_weight: float = 0.4  # in the similarity that ranks (0: the exchange alone)
    lexical_weight: float = 0.06  # the most a word match can add (cosine units)
    lexical_saturation: float = 5.0  # the BM25 score that earns half of it
    supersede_from: float = 0.5  # doc-vector cosine where "same subject" starts
    supersede_margin: float = 0.15  # how much less relevant a newer memory may be
    told_weight: float = 0.15  # what a statement earns over a question or request
    statement_weight: float = 0.5  # the question's statement form in the query vector
    update_depth: int = 2  # how many of the best memories bring in their updates
    inject_similarity: float = 0.449
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
    told = np.array([is_told(c.record.query) for c in candidates])
    relevance = (similarity + lexical_bonus([c.lexical for c in candidates], params)
                 + params.told_weight * told)
    ages = np.array([(now - c.record.timestamp) / SECONDS_PER_DAY for c in candidates])
    fresh = freshness(ages, params)
    aged = relevance - params.age_weight * (1.0 - fresh)
    chosen = [int(i) for i in np.argsort(-relevance, kind="stable")[: params.limit]]
    chosen, aged = _updates_from_below(candidates, told, chosen, relevance, aged, params)
    scores, superseded = _supersede(aged, _links(candidates, aged, params), chosen)
    order = sorted(chosen, key=lambda i: (-scores[i], i))
    return [Recalled(record=candidates[i].record, score=float(scores[i]),
                     similarity=float(similarity[i]), decay=float(fresh[i]),
                     superseded=float(superseded[i]), lexical=candidates[i].lexical or 0.0)
            for i in order]


def relevant(hits: Sequence[Recalled], params: RankingParams) -> list[Recalled]:
    """The hits close enough in meaning to put into a prompt (the context compiler's gate)."""
    return [h for h in hits if h.similarity >= params.inject_similarity]


def _updates_from_below(candidates: Sequence[Candidate], told: np.ndarray, chosen: list[int],
                        relevance: np.ndarray, aged: np.ndarray, params: RankingParams
                        ) -> tuple[list[int], np.ndarray]:
    """`chosen` with the updates (see `_update_of`) of its best `update_depth` memories
    brought in, each just above the memory it updates, in place of the least relevant
    chosen memory below that one which neither updates nor is updated (none: it stays out)."""
    chosen, aged = list(chosen), aged.copy()
    fixed: set[int] = set()
    for older in list(chosen[: params.update_depth]):
        newer = _update_of(candidates, told, older, params)
        if newer is None or newer in chosen:
            continue
        spare = [i for i in chosen if i not in fixed | {older, newer}
                 and relevance[i] < relevance[older]]
        if not spare:
            continue
        fixed |= {older, newer}
        chosen.remove(min(spare, key=lambda i: relevance[i]))
        chosen.append(newer)
        aged[newer] = max(aged[newer], aged[older] + _BELOW)
    return chosen, aged


def _update_of(candidates: Sequence[Candidate], told: np.ndarray, older: int,
               params: RankingParams) -> int | None:
    """The statement told after `older` that is closest to it, if `older` is a statement
    and that one is on the same subject (at least `supersede_from`); else None."""
    base = candidates[older]
    if not told[older] or base.doc_vector is None:
        return None
    later = [i for i, c in enumerate(candidates)
             if told[i] and c.doc_vector is not None
             and c.record.timestamp > base.record.timestamp]
    if not later:
        return None
    closeness = [float(candidates[i].doc_vector @ base.doc_vector)
                 for i in later]
    best = int(np.argmax(closeness))
    return later[best] if closeness[best] >= params.supersede_from else None


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
