"""Quality per watt: the bandit's chain choice weighed against what each chain costs.

Under a profile with `energy_weight` w, each candidate scores its bandit value (the
Thompson sample, or the prior mean on a cold start) minus w times its mean joules
over the dearest candidate's: with w = 0.3 the most energy-hungry chain gives up 0.3
of a good-rating chance, a chain half as costly 0.15. Under an `energy_budget`, only
chains whose answers cost at most that on average may run (a chain never measured
may, so it can be measured; if every measured chain is over, the cheapest runs).
"""

from __future__ import annotations

from dataclasses import replace

from mirador.learning.bandit import Decision, EnergyWeighing
from mirador.orchestration.hooks import Limits


def weigh(decision: Decision, limits: Limits, joules: dict[str, float]) -> Decision:
    """`decision` re-picked for quality per watt (unchanged when the profile asks nothing)."""
    if not limits.weighs_energy:
        return decision
    values = _values(decision)
    dearest = max(joules.values(), default=0.0) or 1.0
    scores = {chain: round(value - limits.energy_weight * joules.get(chain, 0.0) / dearest, 4)
              for chain, value in values.items()}
    allowed = _within_budget(list(values), joules, limits.energy_budget)
    pick = max(allowed, key=lambda chain: scores[chain])
    weighing = EnergyWeighing(limits.profile, limits.energy_weight, limits.energy_budget,
                              {c: round(j, 2) for c, j in joules.items() if c in values},
                              scores, tuple(c for c in values if c not in allowed),
                              decision.chain)
    return replace(decision, chain=pick, energy=weighing)


def _values(decision: Decision) -> dict[str, float]:
    """Each candidate's bandit value: its sample, or its prior mean on a cold start."""
    if decision.draws:
        return dict(zip((a.chain for a in decision.arms), decision.draws, strict=True))
    return {a.chain: a.prior_mean if decision.cold_start else a.mean for a in decision.arms}


def _within_budget(chains: list[str], joules: dict[str, float],
                   budget: float | None) -> list[str]:
    if budget is None:
        return chains
    allowed = [c for c in chains if c not in joules or joules[c] <= budget]
    return allowed or [min(chains, key=lambda c: joules[c])]


def describe(weighing: EnergyWeighing, chain: str) -> str:
    """One sentence for `mirador why`: what quality per watt did to the pick."""
    cost = ", ".join(f"{c} {j:.1f} J" for c, j in weighing.joules.items()) or "none measured"
    parts = [f"profile {weighing.profile}: mean joules per answer {cost}"]
    if weighing.weight:
        parts.append(f"each score less {weighing.weight:g} x joules / the dearest's")
    if weighing.excluded:
        parts.append(f"over the {weighing.budget:g} J budget: {', '.join(weighing.excluded)}")
    moved = (f"so {chain} instead of {weighing.before}" if chain != weighing.before
             else f"{chain} still chosen")
    return "; ".join(parts) + f"; {moved}"
