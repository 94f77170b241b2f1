"""The bandit: cold start from the prior, learning, fading, change detection, sharing."""

from __future__ import annotations

from collections import Counter

import pytest

from mirador.learning.bandit import (
    BanditConfig,
    Decision,
    DiscountedThompson,
    capability_priors,
    reward_of,
)

PRIORS = {"business_acceleration": 0.65, "strategic_synthesis": 0.65, "rapid_decision": 0.45,
          "auto": 0.55}
TYPE = "finance/complex"


def picks(bandit: DiscountedThompson, query_type: str = TYPE, n: int = 200) -> Counter[str]:
    return Counter(bandit.choose(query_type, PRIORS).chain for _ in range(n))


def test_ratings_map_to_shares_of_a_success() -> None:
    assert [reward_of(r) for r in range(1, 6)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_priors_favour_auto_then_declared_chains() -> None:
    priors = capability_priors(["a", "auto", "b"], capable=["b"], auto="auto")
    assert priors["auto"] > priors["b"] > priors["a"]


def test_cold_start_takes_the_priors_best_without_sampling() -> None:
    bandit = DiscountedThompson(seed=1)
    decisions = {bandit.choose(TYPE, PRIORS).chain for _ in range(20)}
    assert decisions == {"business_acceleration"}  # first of the two equal priors
    decision = bandit.choose(TYPE, PRIORS)
    assert decision.cold_start and decision.draws == ()


def test_a_decision_ranks_its_candidates_by_belief_the_pick_first() -> None:
    bandit = DiscountedThompson(seed=1)
    ranked = bandit.choose(TYPE, PRIORS).ranked()
    assert ranked == (("business_acceleration", 0.65), ("strategic_synthesis", 0.65),
                      ("auto", 0.55), ("rapid_decision", 0.45))
    for _ in range(5):
        bandit.update(TYPE, "rapid_decision", 5)
    explored = Decision(TYPE, "auto", bandit.evidence(TYPE, PRIORS), draws=(0.1, 0.1, 0.1, 0.9))
    chains = [c for c, _ in explored.ranked()]
    assert chains[0] == "auto" and chains[1] == "rapid_decision"  # by mean, not by draw


def test_it_learns_the_chain_that_earns_good_ratings() -> None:
    bandit = DiscountedThompson(seed=2)
    for _ in range(30):
        chain = bandit.choose(TYPE, PRIORS).chain
        bandit.update(TYPE, chain, 5 if chain == "rapid_decision" else 2)
    assert picks(bandit)["rapid_decision"] >= 180
    assert bandit.best(TYPE, PRIORS) == "rapid_decision"


def test_old_evidence_fades_with_each_new_rating_of_the_type() -> None:
    bandit = DiscountedThompson(BanditConfig(fade=0.9, weight=1.0), seed=3)
    bandit.update(TYPE, "auto", 5)
    for _ in range(10):
        bandit.update(TYPE, "rapid_decision", 4)
    auto = next(a for a in bandit.evidence(TYPE, PRIORS) if a.chain == "auto")
    assert auto.good == pytest.approx(0.9 ** 10)
    assert auto.ratings == 1


def test_a_change_of_taste_is_detected_and_the_old_favourite_dropped() -> None:
    bandit = DiscountedThompson(seed=4)
    for _ in range(40):
        bandit.update(TYPE, "strategic_synthesis", 5)
    assert bandit.best(TYPE, PRIORS) == "strategic_synthesis"
    changed_at = next(i for i in range(1, 15) if bandit.update(TYPE, "strategic_synthesis", 1))
    assert changed_at <= 5
    assert bandit.best(TYPE, PRIORS) != "strategic_synthesis"
    assert picks(bandit)["strategic_synthesis"] < 40  # the others get tried again


def test_noise_alone_does_not_look_like_a_change() -> None:
    bandit = DiscountedThompson(seed=5)
    ratings = [5, 4, 5, 3, 5, 4, 5, 5, 2, 5, 4, 5] * 8
    changes = [bandit.update(TYPE, "auto", r) for r in ratings]
    assert not any(changes)


def test_types_of_one_domain_lend_each_other_evidence() -> None:
    bandit = DiscountedThompson(seed=6)
    for _ in range(10):
        bandit.update("finance/simple", "rapid_decision", 5)
    lent = {a.chain: a for a in bandit.evidence(TYPE, PRIORS)}["rapid_decision"]
    assert lent.shared_good > 0 and lent.good == 0 and lent.ratings == 0
    assert not bandit.choose(TYPE, PRIORS).cold_start
    other = {a.chain: a for a in bandit.evidence("health/complex", PRIORS)}["rapid_decision"]
    assert other.weight == 0


def test_a_decision_survives_a_round_trip_through_json_data() -> None:
    bandit = DiscountedThompson(seed=8)
    bandit.update(TYPE, "auto", 4)
    decision = bandit.choose(TYPE, PRIORS)
    assert Decision.from_dict(decision.to_dict()) == decision
