"""Choosing a chain per query type: discounted Thompson sampling over ratings.

Each (query type, chain) pair is an arm with a Beta belief about how likely
the chain is to please. A rating of 1-5 counts as (r-1)/4 of a success and the
rest a failure. Every new rating of a query type first multiplies all of that
type's evidence by `fade`, so old opinions fade and changed tastes win
(discounted Thompson sampling, Raj & Kalyani 2017). A sudden change (the chosen
chain's ratings falling short of its belief, rating after rating) drops most
of the type's old evidence at once, so the other chains are tried again
(a CUSUM test, as in "monitored" bandits). Types of the same domain
("finance/simple", "finance/complex") lend each other their evidence at
`share` weight, so a new type does not start from nothing.

The prior for each arm comes from the manifest: the 'auto' chain (the
configured stages, the one bench/quality.py measures) starts believed best,
then the chains that declare the query's domain among their capabilities.
With no evidence at all (cold start) the chooser takes the prior's best, in
the manifest's order on ties, without sampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def reward_of(rating: int) -> float:
    """A 1-5 rating as the share of a success: 1 -> 0.0, 3 -> 0.5, 5 -> 1.0."""
    return (rating - 1) / 4


def family_of(query_type: str) -> str:
    """The domain part of a query type: 'finance/complex' -> 'finance'."""
    return query_type.partition("/")[0]


@dataclass(frozen=True)
class BanditConfig:
    """The learner's knobs; the defaults are the ones bench/learning.py was tuned with."""

    fade: float = 0.99  # every rating of a type multiplies that type's old evidence by this
    weight: float = 8.0  # how many observations one rating counts as
    prior_strength: float = 2.0  # how many observations the manifest's prior counts as
    share: float = 0.25  # the weight of evidence lent by the same domain's other types
    slack: float = 0.075  # change detection: drops smaller than this are noise
    alarm: float = 1.75  # change detection: a cumulative drop past this means tastes changed
    keep: float = 0.2  # what a detected change keeps of the type's old evidence


@dataclass(frozen=True)
class ArmEvidence:
    """What is believed about one chain for one query type."""

    chain: str
    prior_mean: float
    good: float = 0.0  # discounted successes from this query type's ratings
    bad: float = 0.0
    shared_good: float = 0.0  # weighted successes lent by the domain's other types
    shared_bad: float = 0.0
    ratings: int = 0  # undiscounted count of this type's ratings of this chain
    prior_strength: float = 2.0

    @property
    def alpha(self) -> float:
        return self.prior_mean * self.prior_strength + self.good + self.shared_good

    @property
    def beta(self) -> float:
        return (1 - self.prior_mean) * self.prior_strength + self.bad + self.shared_bad

    @property
    def mean(self) -> float:
        """The believed chance of a good rating."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def weight(self) -> float:
        """How much rating evidence (discounted and lent) stands behind the belief."""
        return self.good + self.bad + self.shared_good + self.shared_bad


@dataclass(frozen=True)
class EnergyWeighing:
    """Quality per watt: each candidate's mean joules, the trade-off, and what it changed.

    `scores` are the bandit's values (samples, or prior means on a cold start) less
    `weight` times the chain's joules over the dearest candidate's; chains over
    `budget` were left out (unmeasured ones never are)."""

    profile: str
    weight: float
    budget: float | None
    joules: dict[str, float]
    scores: dict[str, float]
    excluded: tuple[str, ...] = ()
    before: str = ""  # the chain quality alone would have picked

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EnergyWeighing | None:
        if not data:
            return None
        return cls(**{**data, "excluded": tuple(data.get("excluded", ()))})


@dataclass(frozen=True)
class Decision:
    """One choice and everything that went into it (what `mirador why` shows)."""

    query_type: str
    chain: str
    arms: tuple[ArmEvidence, ...]
    draws: tuple[float, ...] = ()
    cold_start: bool = False
    energy: EnergyWeighing | None = None  # how the profile's quality per watt moved the pick

    @property
    def best_mean(self) -> ArmEvidence:
        return max(self.arms, key=lambda a: a.mean)

    @property
    def explored(self) -> bool:
        """The pick was not the arm with the best mean: the sampling explored."""
        return not self.cold_start and self.best_mean.chain != self.chain

    def ranked(self) -> tuple[tuple[str, float], ...]:
        """Each candidate and its score, the pick first, then the others best first.

        The score is the believed mean (the prior's on a cold start), or, where the
        profile weighed energy, the quality-per-watt score: how sure the choice is, not
        the random draw that made it (two draws may differ a lot on equal beliefs)."""
        scores = (dict(self.energy.scores) if self.energy is not None
                  else {a.chain: round(a.mean, 4) for a in self.arms})
        others = sorted((c for c in scores if c != self.chain), key=lambda c: -scores[c])
        first = [self.chain] if self.chain in scores else []
        return tuple((c, scores[c]) for c in [*first, *others])

    def to_dict(self) -> dict[str, Any]:
        return {"query_type": self.query_type, "chain": self.chain,
                "cold_start": self.cold_start, "draws": list(self.draws),
                "arms": [asdict(a) for a in self.arms],
                "energy": None if self.energy is None else asdict(self.energy)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(query_type=data["query_type"], chain=data["chain"],
                   arms=tuple(ArmEvidence(**a) for a in data["arms"]),
                   draws=tuple(data.get("draws", ())), cold_start=data.get("cold_start", False),
                   energy=EnergyWeighing.from_dict(data.get("energy")))


@dataclass
class _Arm:
    good: float = 0.0
    bad: float = 0.0
    ratings: int = 0
    drop: float = 0.0  # CUSUM of how far ratings fall short of the belief
    recent: list[float] = field(default_factory=list)  # rewards since the drop began

    @property
    def mean(self) -> float | None:
        total = self.good + self.bad
        return self.good / total if total > 0 else None


@dataclass
class DiscountedThompson:
    """The bandit's state: discounted evidence per (query type, chain)."""

    config: BanditConfig = field(default_factory=BanditConfig)
    seed: int | None = None
    _arms: dict[str, dict[str, _Arm]] = field(default_factory=dict, init=False)
    _families: dict[str, set[str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def reset(self) -> None:
        self._arms.clear()
        self._families.clear()

    def update(self, query_type: str, chain: str, rating: int) -> bool:
        """Fade this type's evidence a step and add one rating; True if tastes seem to have changed.

        A change shows as the chosen chain's ratings falling well short of what was
        believed of it, rating after rating (a CUSUM test). Then the type's old
        evidence is mostly dropped and the chosen chain keeps only its recent, poor
        ratings, so the other chains get tried again.
        """
        arms = self._arms.setdefault(query_type, {})
        self._families.setdefault(family_of(query_type), set()).add(query_type)
        arm = arms.setdefault(chain, _Arm())
        reward = reward_of(rating)
        changed = self._detect_change(arm, reward)
        factor = self.config.keep if changed else self.config.fade
        for other in arms.values():
            other.good *= factor
            other.bad *= factor
        if changed:
            for other in arms.values():
                other.drop, other.recent = 0.0, []
            arm.good, arm.bad = 0.0, 0.0
            for earlier in arm.recent:
                self._add(arm, earlier)
        self._add(arm, reward)
        arm.ratings += 1
        return changed

    def _add(self, arm: _Arm, reward: float) -> None:
        arm.good += reward * self.config.weight
        arm.bad += (1 - reward) * self.config.weight

    def _detect_change(self, arm: _Arm, reward: float) -> bool:
        if arm.mean is None:
            return False
        arm.drop = max(0.0, arm.drop + arm.mean - reward - self.config.slack)
        arm.recent = arm.recent + [reward] if arm.drop > 0 else []
        return arm.drop > self.config.alarm

    def evidence(self, query_type: str, priors: Mapping[str, float]) -> tuple[ArmEvidence, ...]:
        """The belief about each candidate chain (the keys of `priors`, in order)."""
        own = self._arms.get(query_type, {})
        siblings = [self._arms[t] for t in self._families.get(family_of(query_type), ())
                    if t != query_type]
        share, strength = self.config.share, self.config.prior_strength
        result = []
        for chain, prior in priors.items():
            arm = own.get(chain) or _Arm()
            lent = [s[chain] for s in siblings if chain in s]
            result.append(ArmEvidence(
                chain=chain, prior_mean=prior, good=arm.good, bad=arm.bad,
                shared_good=share * sum(a.good for a in lent),
                shared_bad=share * sum(a.bad for a in lent),
                ratings=arm.ratings, prior_strength=strength))
        return tuple(result)

    def choose(self, query_type: str, priors: Mapping[str, float]) -> Decision:
        """Thompson-sample one chain among `priors`' keys; the prior's best on a cold start."""
        arms = self.evidence(query_type, priors)
        if not any(a.weight > 0 for a in arms):
            best = max(arms, key=lambda a: a.prior_mean)  # max keeps the first of equals
            return Decision(query_type, best.chain, arms, cold_start=True)
        alphas = np.fromiter((a.alpha for a in arms), float, len(arms))
        betas = np.fromiter((a.beta for a in arms), float, len(arms))
        draws = self._rng.beta(alphas, betas)
        pick = int(np.argmax(draws))
        return Decision(query_type, arms[pick].chain, arms,
                        tuple(round(float(d), 4) for d in draws))

    @property
    def has_evidence(self) -> bool:
        """Whether any rating of any query type is believed (else every choice is a cold start)."""
        return any(a.good + a.bad > 0 for arms in self._arms.values() for a in arms.values())

    def best(self, query_type: str, priors: Mapping[str, float]) -> str:
        """The chain with the best believed mean (no sampling)."""
        return max(self.evidence(query_type, priors), key=lambda a: a.mean).chain


def capability_priors(candidates: Sequence[str], capable: Sequence[str], auto: str,
                      means: tuple[float, float, float] = (0.65, 0.55, 0.45)) -> dict[str, float]:
    """Prior means in candidate order: the 'auto' chain, chains declared for the domain,
    the rest.

    'auto' (the configured stages, routed by complexity) leads because it is the chain
    bench/quality.py measures; the named chains of personas are not measured, and on a
    small model they drift or copy. Ratings move a person to them."""
    automatic, declared, other = means
    return {c: automatic if c == auto else declared if c in capable else other
            for c in candidates}
