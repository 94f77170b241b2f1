"""Speculative execution (orchestration/speculative_chains.py) against the pick alone, same run.

The whole stack (`mirador.compose`: the learner choosing among its candidate chains, the
quality judge's MiniLM), on queries where the learner is unsure: a fresh learner ties the
career and finance chains (`strategic_synthesis` starts with `quick`,
`business_acceleration` with `strategist`). The queries are the workload's and
bench/data/speculation_uncertain.jsonl's, kept only where speculation has two first
stages to race; split once by a fixed seed into a tuning half and a held-out half.

llama.cpp serves one sequence per loaded model today (`TakesTurns.sequences` = 1), so two
candidates on one model would only take turns and speculation refuses. To measure what it
does once a model serves two sequences (batched sequences are being built), the first
stages other than `quick` (`strategist`, ...) run on a second llama.cpp instance of the
same GGUF (`smollm2-135m-b`): two models, one sequence each, one thread each, so the two
first stages run at once on the two cores.

Each query runs `plain` (speculation off: the pick alone) and `spec` (on), alternating the
order, one stage only (a bench profile: no deeper stages, `--tokens` per stage), the
prompt cache emptied before each run. The tuning half picks `commit_tokens` (8 or 24: the
better mean judged score of the committed first stage, ties to the smaller); the held-out
half reports: time to the committed chain's first visible token, whole-answer seconds,
joules per answer (CPU-time estimate), wasted tokens and joules, how often the commit
went against the pick, and the judged score (MiniLM relevance less repetition and flags)
of the answer each arm gave.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml

from _default_model import prepare_home

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ROOT / "bench" / "data" / "speculation_uncertain.jsonl"
DEFAULTS = ROOT / "src" / "mirador" / "defaults" / "manifest.yaml"
SEED = 15
COMMIT_TOKENS = (8, 24)
SECOND = "smollm2-135m-b"


def config(tokens: int) -> dict[str, Any]:
    return {"memory": {"enabled": False}, "backends": {"llamacpp": {"n_threads": 1}},
            "speculation": {"enabled": True, "max_load": None},
            "energy": {"profile": "bench", "profiles": {"bench": {
                "max_tokens": tokens, "deeper_stages": False, "speculate": True}}}}


def second_model_manifest(home: Path) -> None:
    """The first stages that are not `quick` on a second instance of the default GGUF
    (see the module docstring): `quick_b` is `quick` on it, and they ride on `quick_b`."""
    from mirador.catalog.manifest import manifest_for
    from mirador.settings import load_settings

    model = manifest_for(load_settings(home=home, env={})).model("smollm2-135m")
    defaults = yaml.safe_load(DEFAULTS.read_text())
    firsts = {steps[0] for steps in (c["steps"] for c in defaults["chains"])} - {"quick"}
    moved = [p | {"model": "quick_b"} for p in defaults["personas"]
             if p["id"] in firsts and p.get("model") == "quick"]
    quick = next(p for p in defaults["personas"] if p["id"] == "quick")
    second = model.model_dump(exclude_none=True) | {"id": SECOND, "priority": 10}
    (home / "manifest.yaml").write_text(yaml.safe_dump({
        "models": [second], "personas": [quick | {"id": "quick_b", "model": SECOND},
                                         *moved]}))


def all_queries(workload: Path) -> list[str]:
    lines = [*workload.read_text().splitlines(), *EXTRA.read_text().splitlines()]
    return [json.loads(line)["query"] for line in lines if line.strip()]


def uncertain(orchestrator: Any, queries: list[str]) -> list[str]:
    """The queries whose chain the learner is unsure of, with two first stages to race."""
    from mirador.orchestration.hooks import Query
    from mirador.orchestration.speculative_chains import candidates

    limits = orchestrator.limits.limits()
    kept = []
    for text in queries:
        plan = orchestrator.planner.allowed(orchestrator.plan(text), Query(text), limits, False)
        if candidates(orchestrator.planner, Query(text), plan, limits, None,
                      orchestrator.settings.config.speculation):
            kept.append(text)
    return kept


def split(queries: list[str], limit: int) -> tuple[list[str], list[str]]:
    shuffled = list(queries)
    random.Random(SEED).shuffle(shuffled)
    half = len(shuffled) // 2
    return shuffled[:half][:limit], shuffled[half:][:limit]


async def one(orchestrator: Any, query: str, speculate: bool, commit: int) -> dict[str, Any]:
    from mirador.orchestration import quality

    orchestrator.settings.config.speculation = orchestrator.settings.config.speculation \
        .model_copy(update={"enabled": speculate, "commit_tokens": commit})
    for loaded in orchestrator.manager.backend("llamacpp")._models.values():
        loaded.llm.reset()  # each run reads its prompt afresh
    done = await orchestrator.answer(query, remember=False)
    score = quality.score_stage(query, done.answer, {}, orchestrator.embedder).score
    spec = done.speculation
    return {"ttft": done.ttft, "seconds": done.seconds, "joules": done.energy_j or 0.0,
            "tokens": done.tokens, "score": round(score, 3), "answer": done.answer,
            "ran": bool(spec and spec.ran), "committed": spec.committed if spec else None,
            "predicted": spec.predicted if spec else None,
            "wasted_tokens": spec.wasted_tokens if spec else 0,
            "wasted_joules": (spec.wasted_joules or 0.0) if spec else 0.0,
            "why_not": spec.reason if spec and not spec.ran else None}


async def measure(orchestrator: Any, queries: list[str], commits: tuple[int, ...]
                  ) -> dict[str, list[dict[str, Any]]]:
    """Every query plain and with each `commit_tokens`, the order rotating."""
    arms = [("plain", 0), *((f"spec{k}", k) for k in commits)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in arms}
    for index, query in enumerate(queries):
        order = arms[index % len(arms):] + arms[:index % len(arms)]
        for name, k in order:
            runs[name].append(await one(orchestrator, query, name != "plain", k or 16))
        print(f"  {index + 1}/{len(queries)} " + "  ".join(
            f"{name}: ttft {runs[name][-1]['ttft']:.2f}s" for name, _ in arms), flush=True)
    return runs


def summary(runs: list[dict[str, Any]], plain: list[dict[str, Any]]) -> dict[str, Any]:
    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] or 0.0 for r in rows)

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.mean(r[key] or 0.0 for r in rows)

    return {"answers": len(runs), "raced": sum(r["ran"] for r in runs),
            "committed_against_pick": sum(r["ran"] and r["committed"] != r["predicted"]
                                          for r in runs),
            "ttft_s": round(med(runs, "ttft"), 3),
            "ratio_ttft": round(med(runs, "ttft") / med(plain, "ttft"), 3),
            "seconds": round(med(runs, "seconds"), 3),
            "ratio_seconds": round(med(runs, "seconds") / med(plain, "seconds"), 3),
            "joules": round(mean(runs, "joules"), 2),
            "ratio_joules": round(mean(runs, "joules") / max(mean(plain, "joules"), 1e-9), 3),
            "wasted_tokens": round(mean(runs, "wasted_tokens"), 1),
            "wasted_joules": round(mean(runs, "wasted_joules"), 2),
            "score": round(mean(runs, "score"), 3),
            "not_raced_because": sorted({r["why_not"] for r in runs if r["why_not"]})}


def choose_commit(tuning: dict[str, list[dict[str, Any]]]) -> int:
    """The commit_tokens whose committed answers scored best on tuning (ties: the smaller)."""
    scores = {k: statistics.mean(r["score"] for r in tuning[f"spec{k}"]) for k in COMMIT_TOKENS}
    best = max(scores.values())
    return min(k for k, s in scores.items() if s >= best - 0.01)


def table(report: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'arm':<8} {'n':>3} {'raced':>5} {'moved':>5} {'TTFT s':>7} {'x':>6} "
          f"{'s/ans':>6} {'x':>6} {'J/ans':>6} {'x':>6} {'wasted tok':>10} {'wasted J':>8} "
          f"{'score':>6}")
    for arm, s in report.items():
        print(f"{arm:<8} {s['answers']:>3} {s['raced']:>5} {s['committed_against_pick']:>5} "
              f"{s['ttft_s']:>7} {s['ratio_ttft']:>6} {s['seconds']:>6} {s['ratio_seconds']:>6} "
              f"{s['joules']:>6} {s['ratio_joules']:>6} {s['wasted_tokens']:>10} "
              f"{s['wasted_joules']:>8} {s['score']:>6}")


async def execution_part(workload: Path, limit: int, tokens: int) -> dict[str, Any]:
    """Tune commit_tokens on the tuning half, report the held-out half (see the docstring)."""
    from mirador.compose import create_orchestrator
    from mirador.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        prepare_home(home)
        second_model_manifest(home)
        (home / "config.yaml").write_text(yaml.safe_dump(config(tokens)))
        orchestrator = create_orchestrator(load_settings(home=home, env={}))
        try:
            await orchestrator.answer("Warm up.", remember=False)
            everything = all_queries(workload)
            unsure = uncertain(orchestrator, everything)
            tuning_q, held_q = split(unsure, limit)
            print(f"{len(unsure)} of {len(everything)} queries leave the learner unsure; "
                  f"{len(tuning_q)} tuning + {len(held_q)} held-out")
            print(f"tuning half, commit_tokens {COMMIT_TOKENS}:")
            tuning = await measure(orchestrator, tuning_q, COMMIT_TOKENS)
            commit = choose_commit(tuning)
            print(f"chosen on tuning: commit_tokens {commit}; held-out half:")
            held = await measure(orchestrator, held_q, (commit,))
        finally:
            await orchestrator.aclose()
    report = {arm: summary(runs, held["plain"]) for arm, runs in held.items()}
    table(report)
    for plain, spec in list(zip(held["plain"], held[f"spec{commit}"], strict=True))[:2]:
        print(f"\n  plain ({plain['score']}): {plain['answer'][:140]!r}\n"
              f"  spec  ({spec['score']}, {spec['committed']}): {spec['answer'][:140]!r}")
    return {"model": "SmolLM2-135M-Instruct Q4_1, two instances", "threads": 1,
            "max_tokens": tokens, "seed": SEED, "commit_tokens_chosen_on_tuning": commit,
            "tuning": {arm: summary(runs, tuning["plain"]) for arm, runs in tuning.items()},
            "held_out": report, "queries": {"tuning": tuning_q, "held_out": held_q}}
