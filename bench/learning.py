"""Does Mirador learn which chain a person prefers? A simulation with the real learner.

A simulated person has hidden tastes: a preferences file gives, for each query
type, the chance that each candidate chain's answer earns a good rating, before
and after a change of taste midway. Queries of every type arrive in turn; the
real learner (SQLite store, replay, discounted Thompson sampling, change
detection) picks a chain, the answer is logged, and the person rates it with
noise. No text is generated. After every rating the learner's choice is probed
(sampled without learning) to measure how often it would pick the best chain.

Also measured: the query-type classifier's accuracy on the workload's domain
labels (it never saw those queries), and what `choose()` costs.

    python bench/learning.py [PREFERENCES_FILE] [--runs N] [--seed N] [--no-classifier]

Prints tables and writes bench/results/learning.json and two PNGs beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mirador.catalog.manifest import Manifest, load_manifest
from mirador.learning import AnswerLog, BanditConfig, Learner, LearningStore
from mirador.learning.plot import plot_curves

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT.parent / "shared" / "workload" / "queries.jsonl"
RESULTS = ROOT / "bench" / "results"
DEFAULT_PREFERENCES = ROOT / "bench" / "preferences" / "default.yaml"
CHECKPOINTS = (25, 50, 100)
AFTER_CHECKPOINTS = (10, 20, 30, 50)
PROBES = 16  # sampled choices per probe
TARGET = 0.85


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingModel(Strict):
    noise: float = Field(ge=0.0, le=1.0)
    good: dict[int, float]
    bad: dict[int, float]


class TypeTastes(Strict):
    before: dict[str, float]
    after: dict[str, float]


class Preferences(Strict):
    rating: RatingModel
    change_after: int = Field(ge=1)
    after_change: int = Field(ge=0)
    types: dict[str, TypeTastes]


def load_preferences(path: Path, learner: Learner) -> Preferences:
    import yaml

    try:
        prefs = Preferences.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        sys.exit(f"{path}: {exc}")
    for query_type, tastes in prefs.types.items():
        expected = set(learner.candidates(query_type).chains)
        for phase in (tastes.before, tastes.after):
            if set(phase) != expected:
                sys.exit(f"{path}: {query_type} must give every candidate chain of the manifest "
                         f"({', '.join(sorted(expected))}), got {', '.join(sorted(phase))}")
    return prefs


@dataclass
class Person:
    """Rates an answer: good with the chain's probability, then noise."""

    prefs: Preferences
    rng: random.Random

    def rate(self, query_type: str, chain: str, changed: bool) -> int:
        tastes = self.prefs.types[query_type]
        p_good = (tastes.after if changed else tastes.before)[chain]
        model = self.prefs.rating
        if self.rng.random() < model.noise:
            return self.rng.randint(1, 5)
        scale = model.good if self.rng.random() < p_good else model.bad
        return self.rng.choices(list(scale), weights=list(scale.values()))[0]


def best_chain(tastes: dict[str, float]) -> str:
    return max(tastes, key=lambda c: tastes[c])


@dataclass
class RunResult:
    choice: dict[str, list[float]]  # per type: P(best) after each rating
    regret: dict[str, list[float]]  # per type: expected regret of each choice
    decide_us: list[float]


def simulate(prefs: Preferences, manifest: Manifest, seed: int, folder: Path) -> RunResult:
    store = LearningStore.open(folder / f"run-{seed}.db")
    learner = Learner(store, manifest, None, BanditConfig(), seed=seed)
    person = Person(prefs, random.Random(seed))
    order = list(prefs.types)
    steps = prefs.change_after + prefs.after_change
    result = RunResult({t: [] for t in order}, {t: [] for t in order}, [])
    for step in range(steps):
        changed = step >= prefs.change_after
        person.rng.shuffle(order)
        for query_type in order:
            _one_answer(learner, person, query_type, f"{seed}-{step}-{query_type}", changed,
                        result)
    learner.close()
    return result


def _one_answer(learner: Learner, person: Person, query_type: str, answer_id: str,
                changed: bool, result: RunResult) -> None:
    tastes = person.prefs.types[query_type]
    phase = tastes.after if changed else tastes.before
    started = time.perf_counter()
    decision = learner.decide(query_type)
    result.decide_us.append((time.perf_counter() - started) * 1e6)
    domain, _, complexity = query_type.partition("/")
    learner.store.record_answer(AnswerLog(
        answer_id=answer_id, query=f"(simulated {query_type} query)", domain=domain,
        complexity=complexity, query_type=query_type, chain=decision.chain, status="ok",
        chosen_by="learner", choice={"decision": decision.to_dict()}))
    learner.rate(answer_id, person.rate(query_type, decision.chain, changed))
    result.regret[query_type].append(max(phase.values()) - phase[decision.chain])
    best = best_chain(phase)
    hits = sum(learner.decide(query_type).chain == best for _ in range(PROBES))
    result.choice[query_type].append(hits / PROBES)


def summarise(prefs: Preferences, manifest: Manifest, runs: list[RunResult]) -> dict:
    types = list(prefs.types)
    choice = {t: np.mean([r.choice[t] for r in runs], axis=0) for t in types}
    overall = np.mean([choice[t] for t in types], axis=0)
    random_rate = {t: 1 / len(prefs.types[t].before) for t in types}
    regret = {t: np.cumsum(np.mean([r.regret[t] for r in runs], axis=0)) for t in types}
    random_regret = {t: np.cumsum([_random_regret(prefs, t, i) for i in range(len(regret[t]))])
                     for t in types}
    change = prefs.change_after
    decide = [us for r in runs for us in r.decide_us]
    return {
        "runs": len(runs), "types": types, "change_after": change,
        "checkpoints": {str(k): {"learner": {t: round(float(choice[t][k - 1]), 3) for t in types},
                                 "overall": round(float(overall[k - 1]), 3)}
                        for k in CHECKPOINTS if k <= change},
        "after_change": {str(k): {"learner": {t: round(float(choice[t][change + k - 1]), 3)
                                              for t in types},
                                  "overall": round(float(overall[change + k - 1]), 3)}
                         for k in AFTER_CHECKPOINTS if change + k <= len(overall)},
        "random": {t: round(random_rate[t], 3) for t in types},
        "random_overall": round(float(np.mean(list(random_rate.values()))), 3),
        "recovery": {"to_target": _first_at(overall[change:], TARGET),
                     "to_half": _first_at(overall[change:], 0.5),
                     "per_type": {t: _first_at(choice[t][change:], TARGET) for t in types}},
        "regret": {"learner": round(float(np.mean([regret[t][-1] for t in types])), 2),
                   "random": round(float(np.mean([random_regret[t][-1] for t in types])), 2)},
        "curves": {"choice": [round(float(v), 4) for v in overall],
                   "regret": [round(float(v), 4) for v in np.mean(list(regret.values()), axis=0)],
                   "random_regret": [round(float(v), 4)
                                     for v in np.mean(list(random_regret.values()), axis=0)]},
        "decide_us": {"mean": round(statistics.fmean(decide), 1),
                      "p50": round(float(np.percentile(decide, 50)), 1),
                      "p99": round(float(np.percentile(decide, 99)), 1)},
    }


def _random_regret(prefs: Preferences, query_type: str, step: int) -> float:
    tastes = prefs.types[query_type]
    phase = tastes.after if step >= prefs.change_after else tastes.before
    return max(phase.values()) - statistics.fmean(phase.values())


def _first_at(curve: np.ndarray, level: float) -> int | None:
    """Ratings (1-based) until the curve first reaches `level`."""
    hits = np.nonzero(curve >= level)[0]
    return int(hits[0]) + 1 if hits.size else None


def classifier_figures(manifest: Manifest) -> dict:
    """Accuracy on the workload's domain labels, and what choose() costs."""
    from mirador.embeddings import load_embedder
    from mirador.orchestration.hooks import Query
    from mirador.settings import load_settings

    rows = [json.loads(line) for line in WORKLOAD.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=Path(home), env={})
        started = time.perf_counter()
        learner = Learner.open(settings, manifest, embedder=load_embedder(settings))
        classifier = learner.classifier()
        assert classifier is not None
        ready = time.perf_counter() - started
        misses, embed_ms, vote_ms, choose_ms = [], [], [], []
        for row in rows:
            t0 = time.perf_counter()
            vector = classifier.embed(row["query"])
            t1 = time.perf_counter()
            predicted = classifier.classify(row["query"], vector)
            t2 = time.perf_counter()
            learner.choose(Query(row["query"]))
            t3 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1e3)
            vote_ms.append((t2 - t1) * 1e3)
            choose_ms.append((t3 - t2) * 1e3)
            if predicted.domain != row["domain"]:
                misses.append({"query": row["query"], "label": row["domain"],
                               "predicted": predicted.domain})
        learner.close()
    return {"queries": len(rows), "correct": len(rows) - len(misses),
            "accuracy": round(1 - len(misses) / len(rows), 3), "misses": misses,
            "classifier_ready_s": round(ready, 2),
            "embed_ms_median": round(statistics.median(embed_ms), 2),
            "vote_and_complexity_ms_median": round(statistics.median(vote_ms), 3),
            "choose_ms_median": round(statistics.median(choose_ms), 2)}


def print_tables(summary: dict, prefs_path: Path) -> None:
    types = summary["types"]
    print(f"\nSimulation: {prefs_path.name}, {summary['runs']} runs, "
          f"tastes change after {summary['change_after']} ratings per type")
    print(f"\n{'best chain chosen':<30}" + "".join(f"{t:>24}" for t in types)
          + f"{'overall':>10}{'random':>8}")
    rows = [(f"after {k} ratings", v) for k, v in summary["checkpoints"].items()]
    rows += [(f"{k} ratings after the change", v) for k, v in summary["after_change"].items()]
    for label, values in rows:
        print(f"{label:<30}" + "".join(f"{values['learner'][t]:>24.0%}" for t in types)
              + f"{values['overall']:>10.0%}{summary['random_overall']:>8.0%}")
    rec = summary["recovery"]
    print(f"\nrecovery after the change: back to {TARGET:.0%} best-chain choice after "
          f"{rec['to_target']} ratings per type (new best chosen over half the time after "
          f"{rec['to_half']}); per type: {rec['per_type']}")
    print(f"cumulative regret per type over the run: learner {summary['regret']['learner']}, "
          f"random {summary['regret']['random']}")
    d = summary["decide_us"]
    print(f"bandit choice (decide): mean {d['mean']} µs, p50 {d['p50']} µs, p99 {d['p99']} µs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preferences", nargs="?", type=Path, default=DEFAULT_PREFERENCES)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-classifier", action="store_true",
                        help="Skip the classifier accuracy and choose() timing.")
    parser.add_argument("--out", type=Path, default=RESULTS / "learning.json")
    args = parser.parse_args(argv)
    manifest = load_manifest(None)
    with tempfile.TemporaryDirectory() as folder:
        probe = Learner(LearningStore.open(Path(folder) / "probe.db"), manifest)
        prefs = load_preferences(args.preferences, probe)
        probe.close()
        started = time.perf_counter()
        runs = [simulate(prefs, manifest, args.seed + i, Path(folder)) for i in range(args.runs)]
    summary = summarise(prefs, manifest, runs)
    summary["preferences"] = str(args.preferences)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print_tables(summary, args.preferences)
    if not args.no_classifier:
        summary["classifier"] = classifier_figures(manifest)
        c = summary["classifier"]
        print(f"\nquery types: domain accuracy on the workload {c['correct']}/{c['queries']} "
              f"= {c['accuracy']:.0%} (never trained on it); one embedding "
              f"{c['embed_ms_median']} ms, vote + complexity {c['vote_and_complexity_ms_median']}"
              f" ms, whole choose() {c['choose_ms_median']} ms (medians)")
    write_outputs(summary, args.out)


def write_outputs(summary: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    change = summary["change_after"] + 0.5
    curves = summary["curves"]
    plot_curves(Path(f"{stem}_choice.png"),
                {"learner": curves["choice"],
                 "random choice": [summary["random_overall"]] * len(curves["choice"]),
                 f"target {TARGET:.0%}": [TARGET] * len(curves["choice"])},
                "How often the best chain is chosen", "ratings per query type",
                "share of choices", marks={"tastes change": change})
    plot_curves(Path(f"{stem}_regret.png"),
                {"learner": curves["regret"], "random choice": curves["random_regret"]},
                "Cumulative regret (chance of a good rating lost)", "ratings per query type",
                "regret", marks={"tastes change": change})
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {out}, {stem}_choice.png and {stem}_regret.png")


if __name__ == "__main__":
    main()
