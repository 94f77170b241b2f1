"""Why an answer used the chain it did: the query type, the candidates, their evidence.

`explanation` gathers it as plain data (what `mirador why --json` prints);
`render` turns that into the text a person reads. Both work from what was
stored when the answer was chosen, plus what the learner believes now, so a
person can watch it change its mind as ratings come in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mirador.catalog.manifest import AUTO_CHAIN
from mirador.learning import energy
from mirador.learning.bandit import ArmEvidence, Decision, family_of
from mirador.learning.store import AnswerLog, Rating

_CHOSEN_BY = {
    "learner": "chosen by the learner",
    "caller": "named by you (--chain)",
    "stages": "none: you named the stages",
    "routing": "the default routing (the learner made no choice)",
}


def describe_decision(decision: Decision) -> str:
    """Why the bandit picked this chain (and what quality per watt did to the pick)."""
    if decision.energy is not None:
        quality = describe_decision(replace(decision, chain=decision.energy.before, energy=None))
        return f"{quality}. Quality per watt: {energy.describe(decision.energy, decision.chain)}"
    chosen = next(a for a in decision.arms if a.chain == decision.chain)
    if decision.cold_start:
        source = ("the configured stages, the measured default" if chosen.chain == AUTO_CHAIN
                  else "from the manifest's capabilities")
        return (f"cold start: no ratings yet for {decision.query_type} or other "
                f"{family_of(decision.query_type)} queries, so the prior's best: "
                f"{chosen.chain} (prior {chosen.prior_mean:.2f}, {source})")
    draw = dict(zip((a.chain for a in decision.arms), decision.draws, strict=False))
    if decision.explored:
        best = decision.best_mean
        return (f"exploring: {chosen.chain} is less certain ({_belief(chosen)}) and its sample "
                f"{draw.get(chosen.chain, 0):.2f} beat that of {best.chain} "
                f"({draw.get(best.chain, 0):.2f}), the best believed ({_belief(best)})")
    return (f"{chosen.chain} has the best believed chance of a good rating ({_belief(chosen)}) "
            f"and drew the highest sample ({draw.get(chosen.chain, 0):.2f})")


def _belief(arm: ArmEvidence) -> str:
    lent = arm.shared_good + arm.shared_bad
    extra = f" + {lent:.1f} lent by the domain" if lent >= 0.05 else ""
    return f"{arm.mean:.2f} from {arm.ratings} rating{'s' * (arm.ratings != 1)}{extra}"


def explanation(answer: AnswerLog, ratings: Sequence[Rating],
                now: Decision | None) -> dict[str, Any]:
    """Everything `mirador why` shows, as JSON-ready data."""
    choice = answer.choice or {}
    decision = choice.get("decision")
    return {
        "answer_id": answer.answer_id, "query": answer.query, "created_at": answer.created_at,
        "query_type": answer.query_type, "domain": answer.domain,
        "complexity": answer.complexity, "domain_confidence": choice.get("confidence"),
        "neighbours": choice.get("neighbours", []),
        "complexity_reasons": choice.get("complexity_reasons", []),
        "chain": answer.chain, "chosen_by": answer.chosen_by,
        "candidates_from": choice.get("candidates_from"),
        "decision": decision,
        "reason": describe_decision(Decision.from_dict(decision)) if decision else None,
        "ratings": [{"rating": r.rating, "note": r.note, "rated_at": r.rated_at}
                    for r in ratings],
        "now": None if now is None else {**now.to_dict(), "best": now.best_mean.chain},
        "status": answer.status, "seconds": answer.seconds,
        "profile": answer.profile, "energy_j": answer.energy_j,
        "energy_method": answer.energy_method,
        "plan_shaped": choice.get("plan_shaped", []),
    }


def render(data: dict[str, Any]) -> str:
    """The explanation as text for a terminal."""
    lines = [f"answer {data['answer_id']} · {_when(data['created_at'])} · {data['status']}, "
             f"{data['seconds'] or 0:.1f} s{_energy(data)}",
             f"  \"{_short(data['query'], 90)}\"" if data["query"] else "  (text not kept)", "",
             f"query type: {data['query_type']}"]
    lines += _type_lines(data)
    lines += ["", f"chain: {data['chain'] or '(stages)'} — "
                  f"{_CHOSEN_BY.get(data['chosen_by'], data['chosen_by'])}"]
    if data["decision"]:
        source = data["candidates_from"]
        origin = ("declared capabilities" if source == "capabilities"
                  else f"the manifest's '{source}' candidates")
        lines += [f"candidates (from {origin}), when it chose:"]
        lines += arm_table(Decision.from_dict(data["decision"]))
        lines += ["", f"why: {data['reason']}"]
    lines += [""] + _rating_lines(data["ratings"])
    if "dna" in data:
        dna = data["dna"]
        lines += ["", f"Model DNA v{dna['version']} when it answered: {dna['effect']}"]
    lines += [f"  plan: {note}" for note in data.get("plan_shaped", [])]
    lines += _now_lines(data)
    return "\n".join(lines)


def _energy(data: dict[str, Any]) -> str:
    """', 41.2 J (cpu-time estimate) under profile battery', or nothing if unmeasured."""
    if data.get("energy_j") is None:
        return ""
    return (f", {data['energy_j']:.1f} J ({data['energy_method']}) under profile "
            f"{data['profile']}")


def _type_lines(data: dict[str, Any]) -> list[str]:
    confidence = data["domain_confidence"]
    shown = f" (vote share {confidence:.2f})" if confidence is not None else ""
    lines = [f"  domain {data['domain']}{shown}; nearest examples:"]
    lines += [f"    {sim:.2f}  {domain:<13} {_short(text, 60)}"
              for domain, sim, text in data["neighbours"][:3]]
    reasons = "; ".join(data["complexity_reasons"]) or "from the router"
    lines.append(f"  complexity {data['complexity']}: {reasons}")
    return lines


def arm_table(decision: Decision) -> list[str]:
    """One row per candidate: prior, ratings, weighted evidence, belief and sample."""
    draws = dict(zip((a.chain for a in decision.arms), decision.draws, strict=False))
    rows = [f"    {'chain':<24}{'prior':>6}{'ratings':>9}{'evidence':>10}{'believed':>10}"
            f"{'sample':>8}"]
    for arm in decision.arms:
        mark = "▸ " if arm.chain == decision.chain else "  "
        draw = f"{draws[arm.chain]:.2f}" if arm.chain in draws else "-"
        rows.append(f"  {mark}{arm.chain:<24}{arm.prior_mean:>6.2f}{arm.ratings:>9}"
                    f"{arm.weight:>10.1f}{arm.mean:>10.2f}{draw:>8}")
    return rows


def _rating_lines(ratings: list[dict[str, Any]]) -> list[str]:
    if not ratings:
        return ["not rated yet: mirador rate <id> 1-5 teaches the learner"]
    lines = []
    for r in ratings:
        note = f" — \"{r['note']}\"" if r["note"] else ""
        lines.append(f"rated {r['rating']}/5 on {_when(r['rated_at'])}{note}")
    if len(ratings) > 1:
        lines.append("  (the newest rating counts)")
    return lines


def _now_lines(data: dict[str, Any]) -> list[str]:
    now = data["now"]
    if now is None:
        return []
    decision = Decision.from_dict(now)
    best = decision.best_mean
    if decision.cold_start:
        verdict = f"nothing learned yet; it would start with {decision.chain}"
    else:
        verdict = f"it believes {best.chain} is best ({_belief(best)})"
    changed = ""
    if data["chain"] and best.chain != data["chain"] and not decision.cold_start:
        changed = f" — it has changed its mind since choosing {data['chain']}"
    return ["", f"now, for {data['query_type']}: {verdict}{changed}"] + arm_table(decision)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "?"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
