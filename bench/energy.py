"""Energy per answer under each profile, and what it costs in answer quality.

Over the held-out half of bench/data/quality_questions.jsonl (the split bench/quality.py
uses; seed 9), each question is answered once under every profile, interleaved so
that each profile sees the same machine load. The power state is scripted
(performance: plugged in; balanced: on battery at 80%; battery: on battery at 20%),
so the profile is chosen the way it is at run time; one answer first loads the model
and is not counted. Every answer runs the three
configured stages where its profile allows (memory and learning off, so the plan
is the same for every profile but for what the profile trims).

Measured per profile: joules per answer (the meter's method: RAPL where readable,
else this process's CPU seconds x energy.watts_per_core), answers per watt-hour,
seconds per answer, and relevance, bench/quality.py's matched@1 (an answer counts
when its own question is the nearest, by MiniLM, of all the set's questions).
Targets (issue 15): battery at least 3 times less energy per answer than
performance, and within 10% of its matched@1.

    python bench/energy.py [--limit N] [--split heldout|tuning|all]

Prints a table; writes bench/results/energy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.quality import load_questions  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "energy.json"
POWER = {"performance": (None, None), "balanced": (80.0, False), "battery": (20.0, False)}
STAGES = ["quick_response", "deep_analysis", "synthesis"]


def write_home(home: Path) -> None:
    """Memory and learning off; every complexity routed to the three stages."""
    config = {"memory": {"enabled": False}, "learning": {"enabled": False},
              "routing": {level: STAGES for level in ("simple", "medium", "complex")}}
    (home / "config.yaml").write_text(yaml.safe_dump(config))


async def answer(orchestrator: Any, question: str) -> dict[str, Any]:
    from mirador.orchestration.events import Done, final

    started = time.perf_counter()
    done = await final(orchestrator.process(question, remember=False))
    assert isinstance(done, Done)
    return {"question": question, "answer": done.answer, "profile": done.profile,
            "joules": done.energy_j, "method": done.energy_method,
            "stages": len(done.answers), "seconds": time.perf_counter() - started}


async def run(questions: list[str], home: Path) -> dict[str, list[dict[str, Any]]]:
    from mirador.energy.meter import EnergyMeter
    from mirador.energy.power import ScriptedPower
    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.orchestration.profiles import ProfileLimits
    from mirador.settings import load_settings

    settings = load_settings(home=home, env={"MIRADOR_HOME": str(home)})
    power = ScriptedPower()
    meter = EnergyMeter(settings.config.energy.watts_per_core)
    orchestrator = Orchestrator(settings, limits=ProfileLimits(settings, power, meter))
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in POWER}
    try:
        power.set(None, None)
        await answer(orchestrator, "Hello!")  # loads the model and the judge: not counted
        for i, question in enumerate(questions, 1):
            for name, (percent, plugged) in POWER.items():
                power.set(percent, plugged)
                row = await answer(orchestrator, question)
                assert row["profile"] == name, (row["profile"], name)
                rows[name].append(row)
            print(f"  {i}/{len(questions)} {question[:50]!r}: " + ", ".join(
                f"{n} {r[-1]['joules']:.0f} J" for n, r in rows.items()), file=sys.stderr)
    finally:
        await orchestrator.aclose()
    return rows


def matched_at_1(rows: list[dict[str, Any]], every: list[str], embedder: Any,
                 q_vectors: Any) -> float:
    vectors = embedder.embed([r["answer"] or " " for r in rows])
    nearest = (vectors @ q_vectors.T).argmax(axis=1)
    own = [every.index(r["question"]) for r in rows]
    return round(sum(int(n == o) for n, o in zip(nearest, own, strict=True)) / len(rows), 3)


def summarise(rows: dict[str, list[dict[str, Any]]], every: list[str]) -> dict[str, Any]:
    from mirador.embeddings.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder.load()
    q_vectors = embedder.embed(every)
    out = {}
    for name, answers in rows.items():
        joules = [r["joules"] for r in answers]
        mean = statistics.fmean(joules)
        out[name] = {"joules_mean": round(mean, 2), "joules_median": round(
                         statistics.median(joules), 2),
                     "answers_per_wh": round(3600 / mean, 1) if mean else None,
                     "seconds_median": round(statistics.median(r["seconds"] for r in answers), 2),
                     "stages_mean": round(statistics.fmean(r["stages"] for r in answers), 2),
                     "matched_at_1": matched_at_1(answers, every, embedder, q_vectors),
                     "method": answers[0]["method"]}
    perf, batt = out["performance"], out["battery"]
    out["battery_vs_performance"] = {
        "energy_ratio": round(perf["joules_mean"] / batt["joules_mean"], 2),
        "quality_ratio": round(batt["matched_at_1"] / perf["matched_at_1"], 3)
        if perf["matched_at_1"] else None}
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'profile':<13}{'J/answer':>10}{'median J':>10}{'answers/Wh':>12}"
             f"{'s median':>10}{'stages':>8}{'matched@1':>11}"]
    for name in POWER:
        s = summary[name]
        lines.append(f"{name:<13}{s['joules_mean']:>10.1f}{s['joules_median']:>10.1f}"
                     f"{s['answers_per_wh']:>12.1f}{s['seconds_median']:>10.1f}"
                     f"{s['stages_mean']:>8.2f}{s['matched_at_1']:>11.3f}")
    ratio = summary["battery_vs_performance"]
    lines.append(f"\nbattery uses {ratio['energy_ratio']:.2f}x less energy per answer than "
                 f"performance (target >= 3), at {ratio['quality_ratio']:.3f} of its "
                 f"matched@1 (target >= 0.9); method: {summary['performance']['method']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="heldout", choices=["tuning", "heldout", "all"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    every, questions = load_questions(args.split)
    questions = questions[:args.limit] if args.limit else questions
    with tempfile.TemporaryDirectory(prefix="mirador-energy-") as tmp:
        write_home(Path(tmp))
        rows = asyncio.run(run(questions, Path(tmp)))
    summary = summarise(rows, every)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"split": args.split, "questions": len(questions),
                                    "summary": summary, "answers": rows}, indent=1))
    print(f"\nEnergy per answer by profile, {args.split} half, {len(questions)} questions\n")
    print(table(summary))


if __name__ == "__main__":
    main()
