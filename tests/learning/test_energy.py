"""Quality per watt: the bandit's pick weighed against each chain's measured joules."""

from __future__ import annotations

from pathlib import Path

from mirador.learning.bandit import ArmEvidence, Decision
from mirador.learning.energy import weigh
from mirador.learning.explain import describe_decision
from mirador.learning.learner import Learner
from mirador.learning.store import AnswerLog, LearningStore
from mirador.orchestration.hooks import Limits

ARMS = (ArmEvidence("deep", prior_mean=0.6, good=3, ratings=3),
        ArmEvidence("light", prior_mean=0.5, good=2, ratings=2))
SAMPLED = Decision("general/simple", "deep", ARMS, draws=(0.62, 0.55))
JOULES = {"deep": 90.0, "light": 20.0}


def test_no_trade_off_asked_leaves_the_pick_alone() -> None:
    assert weigh(SAMPLED, Limits("performance"), JOULES) is SAMPLED


def test_balanced_gives_up_a_little_quality_for_much_less_energy() -> None:
    weighed = weigh(SAMPLED, Limits("balanced", energy_weight=0.3), JOULES)
    # deep: 0.62 - 0.3 * 90/90 = 0.32; light: 0.55 - 0.3 * 20/90 = 0.483
    assert weighed.chain == "light" and weighed.energy is not None
    assert weighed.energy.before == "deep"
    assert weighed.energy.scores == {"deep": 0.32, "light": 0.4833}
    # a small weight does not override a clear quality lead
    assert weigh(SAMPLED, Limits("balanced", energy_weight=0.05), JOULES).chain == "deep"


def test_a_budget_leaves_out_dear_chains_but_never_unmeasured_ones() -> None:
    on_budget = weigh(SAMPLED, Limits("battery", energy_budget=30.0), JOULES)
    assert on_budget.chain == "light" and on_budget.energy.excluded == ("deep",)  # type: ignore[union-attr]
    unmeasured = weigh(SAMPLED, Limits("battery", energy_budget=30.0), {"light": 50.0})
    assert unmeasured.chain == "deep", "deep was never measured: it may run, to be measured"
    over = weigh(SAMPLED, Limits("battery", energy_budget=5.0), JOULES)
    assert over.chain == "light", "every chain over the budget: the cheapest runs"


def test_why_says_what_quality_per_watt_did_and_it_survives_storage() -> None:
    weighed = weigh(SAMPLED, Limits("balanced", energy_weight=0.3), JOULES)
    said = describe_decision(weighed)
    assert "Quality per watt: profile balanced" in said and "deep 90.0 J" in said
    assert "so light instead of deep" in said
    assert Decision.from_dict(weighed.to_dict()) == weighed


def test_the_store_averages_measured_joules_per_chain(tmp_path: Path) -> None:
    store = LearningStore.open(tmp_path / "learning.db")
    for i, (chain, joules) in enumerate([("deep", 80.0), ("deep", 100.0), ("light", 20.0),
                                         ("light", None)]):
        store.record_answer(AnswerLog(f"a{i}", "q", "general", "simple", "general/simple",
                                      chain, "ok", energy_j=joules, profile="performance"))
    assert store.mean_joules(["deep", "light", "other"]) == {"deep": 90.0, "light": 20.0}
    assert store.answer("a0").energy_j == 80.0 and store.answer("a0").profile == "performance"
    store.close()


class FixedLimits:
    def __init__(self, limits: Limits) -> None:
        self.fixed = limits

    def limits(self) -> Limits:
        return self.fixed

    def joules(self) -> tuple[float, str]:
        return 0.0, "test"


def test_the_learner_weighs_its_choice_under_an_energy_budget(learner: Learner) -> None:
    from mirador.orchestration.hooks import Query

    query = Query("Should I refinance my mortgage now or wait a year?")
    plain = learner.choose(query)
    assert plain is not None and "Quality per watt" not in plain.reason
    learner.store.record_answer(AnswerLog("dear", "q", "finance", "complex", plain.query_type,
                                          plain.chain, "ok", energy_j=500.0))
    learner.limits = FixedLimits(Limits("battery", energy_budget=30.0))
    weighed = learner.choose(query)
    assert weighed is not None and weighed.chain != plain.chain, "over budget: left out"
    assert f"over the 30 J budget: {plain.chain}" in weighed.reason


def test_the_learner_picks_only_among_the_profiles_chains(learner: Learner) -> None:
    from mirador.orchestration.hooks import Query

    query = Query("Should I refinance my mortgage now or wait a year?")
    plain = learner.choose(query)
    assert plain is not None
    candidates = learner.candidates(plain.query_type).chains
    others = [c for c in candidates if c != plain.chain]
    for allowed in ([others[-1]], others):
        learner.limits = FixedLimits(Limits("lean", chains=tuple(allowed)))
        for _ in range(5):  # the bandit samples: every draw stays inside the allowed list
            pick = learner.choose(query)
            assert pick is not None and pick.chain in allowed
    learner.limits = FixedLimits(Limits("lean", chains=("no_such_candidate",)))
    assert learner.choose(query) is None, "none allowed: the orchestrator's fallback answers"
