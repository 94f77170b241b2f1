"""What the learner has learned: per query type, the chains tried, their ratings and latency.

`learning_stats` summarises the answers table; `regret_curve` estimates how
much rating was lost by not always using the chain now believed best (the
regret of each rated answer against today's beliefs, added up), next to the
same sum for choosing at random among the candidates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

from mirador.learning.bandit import Decision


@dataclass(frozen=True)
class ChainStats:
    chain: str
    answers: int
    rated: int
    mean_rating: float | None
    mean_seconds: float | None
    mean_ttft: float | None
    mean_joules: float | None  # energy per answer (see the answers' energy_method)
    believed: float | None  # the learner's current belief in a good rating, if a candidate


@dataclass(frozen=True)
class TypeStats:
    query_type: str
    answers: int
    rated: int
    best: str | None  # the chain believed best now
    chains: tuple[ChainStats, ...]


Beliefs = Callable[[str], Decision]


def learning_stats(rows: Iterable[dict[str, Any]], beliefs: Beliefs) -> list[TypeStats]:
    """Per query type (most answered first), per chain: counts, mean rating and latency."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_type.setdefault(row["query_type"], []).append(row)
    result = [_type_stats(qt, answers, beliefs(qt)) for qt, answers in by_type.items()]
    return sorted(result, key=lambda t: (-t.answers, t.query_type))


def _type_stats(query_type: str, rows: list[dict[str, Any]], now: Decision) -> TypeStats:
    believed = {a.chain: a.mean for a in now.arms}
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_chain.setdefault(row["chain"] or "(stages)", []).append(row)
    chains = tuple(sorted((_chain_stats(c, rs, believed.get(c)) for c, rs in by_chain.items()),
                          key=lambda c: (-c.answers, c.chain)))
    return TypeStats(query_type, len(rows), sum(c.rated for c in chains),
                     None if now.cold_start else now.best_mean.chain, chains)


def _chain_stats(chain: str, rows: list[dict[str, Any]], believed: float | None) -> ChainStats:
    ratings = [r["rating"] for r in rows if r["rating"] is not None]
    return ChainStats(chain, len(rows), len(ratings), _mean(ratings),
                      _mean(r["seconds"] for r in rows), _mean(r["ttft"] for r in rows),
                      _mean(r.get("energy_j") for r in rows),
                      None if believed is None else round(believed, 3))


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(fmean(present), 3) if present else None


def rated_in_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rated answers in the order their (newest) ratings were given."""
    return sorted((r for r in rows if r["rating"] is not None), key=lambda r: r["rated_at"])


def regret_curve(rows: Iterable[dict[str, Any]], beliefs: Beliefs
                 ) -> tuple[list[float], list[float]]:
    """Cumulative estimated regret of the chains used, and of random choice, per rating."""
    learner, random, total_l, total_r = [], [], 0.0, 0.0
    cache: dict[str, Decision] = {}
    for row in rated_in_order(rows):
        now = cache.setdefault(row["query_type"], beliefs(row["query_type"]))
        means = {a.chain: a.mean for a in now.arms}
        if row["chain"] not in means:
            continue  # named stages, or a chain that is no candidate of its type
        best = max(means.values())
        total_l += best - means[row["chain"]]
        total_r += best - fmean(means.values())
        learner.append(round(total_l, 4))
        random.append(round(total_r, 4))
    return learner, random


def stats_dict(types: list[TypeStats]) -> list[dict[str, Any]]:
    return [asdict(t) for t in types]


def render_stats(types: list[TypeStats], total_answers: int, total_rated: int) -> str:
    """A table per query type, for a terminal."""
    if not types:
        return "no answers yet: ask something (mirador ask \"...\"), then rate it (mirador rate 4)"
    lines = [f"{total_answers} answers, {total_rated} rated", ""]
    for t in types:
        best = f"; believed best now: {t.best}" if t.best else ""
        lines.append(f"{t.query_type} — {t.answers} answers, {t.rated} rated{best}")
        lines.append(f"    {'chain':<24}{'answers':>8}{'rated':>7}{'mean':>7}{'believed':>10}"
                     f"{'seconds':>9}{'first tok':>10}{'joules':>8}")
        for c in t.chains:
            lines.append(f"    {c.chain:<24}{c.answers:>8}{c.rated:>7}{_num(c.mean_rating, 2):>7}"
                         f"{_num(c.believed, 2):>10}{_num(c.mean_seconds, 1):>9}"
                         f"{_num(c.mean_ttft, 2):>10}{_num(c.mean_joules, 1):>8}")
        lines.append("")
    return "\n".join(lines).rstrip()


NOT_KEPT = "(text not kept)"  # forgotten, or answered with memory off


def recent_answers(rows: list[dict[str, Any]], limit: int) -> str:
    """The newest answers, one line each: id, when, type, chain, rating and the query."""
    lines = []
    for row in rows[-limit:][::-1]:
        when = dt.datetime.fromtimestamp(row["created_at"]).strftime("%m-%d %H:%M")
        rating = f"{row['rating']}/5" if row["rating"] is not None else "-"
        query = " ".join(row["query"].split()) or NOT_KEPT
        query = query if len(query) <= 40 else query[:39] + "…"
        lines.append(f"  {row['answer_id']}  {when}  {row['query_type']:<22} "
                     f"{row['chain'] or '(stages)':<22} {rating:>4}  {query}")
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
