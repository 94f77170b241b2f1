"""Preload on the shared workload, for bench/models.py.

Five base models (the default Gemma under five ids, so each is a real ~350 MiB
load), and a budget that holds two. The built-in domain personas, with their
shipped triggers, move onto the domain bases: finance, technical, health and
career queries need their own base; everything else runs on the general one.
Which persona a query needs comes from its domain label in the workload, which
the predictor never sees.

Each query runs twice from the same starting state (the previous query's base
loaded): first *with* preload, typed word by word into the debounced preloader
(half a word, then the whole word, `seconds_per_word` apart) and then submitted;
then *without*, submitted at once. Time to first token is measured from submit.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

from mirador.backends import ChatRequest, Message
from mirador.catalog.manifest import Manifest, SamplingOptions, builtin_manifest_data
from mirador.models.manager import ModelManager
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.preload import attach
from mirador.orchestration.stages import ModelStage
from mirador.settings import ModelsConfig, load_settings

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT.parent / "shared" / "workload" / "queries.jsonl"
MiB = 1 << 20
DOMAIN_PERSONA = {"finance": "financial_advisor", "technical": "tech_expert",
                  "health": "health_coach", "career": "career_coach"}
DOMAIN_BASE = {"financial_advisor": "finance-base", "tech_expert": "tech-base",
               "health_coach": "health-base", "career_coach": "career-base"}


def workload_manifest(gemma: Path) -> Manifest:
    data = builtin_manifest_data()
    data["models"][0].update(path=str(gemma), package=None)
    for base in DOMAIN_BASE.values():
        data["models"].append({"id": base, "path": str(gemma), "context_length": 4096})
    for persona in data["personas"]:
        if persona["id"] in DOMAIN_BASE:
            persona["model"] = DOMAIN_BASE[persona["id"]]
            persona.setdefault("examples", [])  # the 'quick' examples no longer inherited
    return Manifest.model_validate(data)


def load_workload(limit: int | None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in WORKLOAD.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


async def bench_preload(folder: Path, gemma: Path, quick: bool,
                        seconds_per_word: float = 0.3, budget_mib: int = 900) -> dict[str, Any]:
    home = folder / "preload-home"
    settings = load_settings(home=home, env={}, models=ModelsConfig(
        budget=budget_mib * MiB, preload_debounce=seconds_per_word / 2 * 0.8))
    manifest = workload_manifest(gemma)
    manager = ModelManager(settings, manifest)
    with_preload = Orchestrator(settings, manifest=manifest, manager=manager)
    preloader = attach(with_preload)
    assert preloader is not None
    without = Orchestrator(settings, manifest=manifest, manager=manager)  # no preloader
    rows = []
    try:
        previous = "smollm2-135m"
        for item in load_workload(12 if quick else None):
            persona = DOMAIN_PERSONA.get(item["domain"], "quick")
            needed = manifest.resolve(persona).model.id
            row = {"query": item["query"], "domain": item["domain"], "needed": needed,
                   "switch": needed != previous}
            await _reset(manager, manifest, previous)
            row["with"] = await _typed_and_submitted(with_preload, preloader, item["query"],
                                                     persona, needed, seconds_per_word)
            await _reset(manager, manifest, previous)
            row["without"] = await _submitted(without, item["query"], persona)
            rows.append(row)
            previous = needed
    finally:
        await manager.aclose()
    return _summary(rows, preloader.usage, manager, seconds_per_word, budget_mib)


async def _reset(manager: ModelManager, manifest: Manifest, keep: str) -> None:
    """Only `keep` loaded, as the previous query left it, with an unrelated prompt in its
    cache (so neither run reuses the other's evaluated prompt)."""
    await manager.settled()
    for status in manager.status():
        if status.model_id != keep:
            await manager.unload(manifest.model(status.model_id))
    other = ChatRequest(model=manifest.model(keep), messages=(Message("user", "Hello"),),
                        options=SamplingOptions(max_tokens=1, temperature=0.0))
    async for _ in manager.stream_chat(other):
        pass


async def _typed_and_submitted(orchestrator: Orchestrator, preloader: Any, text: str,
                               persona: str, needed: str, seconds_per_word: float
                               ) -> dict[str, Any]:
    words = text.split()
    for i, word in enumerate(words):
        typed = " ".join(words[:i])
        for partial in (word[: max(len(word) // 2, 1)], word + " "):
            preloader.typing(f"{typed} {partial}".lstrip())
            await asyncio.sleep(seconds_per_word / 2)
    ready = any(s.model_id == needed for s in orchestrator.manager.status())  # or loading
    result = await _submitted(orchestrator, text, persona)
    await orchestrator.manager.settled()
    return {**result, "ready_at_submit": ready}


async def _submitted(orchestrator: Orchestrator, text: str, persona: str) -> dict[str, Any]:
    loads = sum(orchestrator.manager.loads.values())
    stage = ModelStage("answer", persona, 0.9, timeout=300, max_tokens=4)
    done = await orchestrator.answer(text, stages=[stage])
    return {"ttft_s": done.ttft, "status": done.status,
            "loads": sum(orchestrator.manager.loads.values()) - loads}


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"mean_s": round(statistics.fmean(ordered), 3),
            "median_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[int(len(ordered) * 0.9)], 3), "n": len(ordered)}


def _summary(rows: list[dict[str, Any]], usage: Any, manager: ModelManager,
             seconds_per_word: float, budget_mib: int) -> dict[str, Any]:
    def ttft(mode: str, subset: list[dict[str, Any]]) -> dict[str, float]:
        return _stats([r[mode]["ttft_s"] for r in subset if r[mode]["ttft_s"] is not None])

    switches = [r for r in rows if r["switch"]]
    figures = usage.figures if usage is not None else None
    return {
        "queries": len(rows), "budget_mib": budget_mib, "seconds_per_word": seconds_per_word,
        "hit_rate": round(figures.hit_rate, 3) if figures and figures.hit_rate else None,
        "precision": round(figures.precision, 3) if figures and figures.precision else None,
        "ready_at_submit": round(sum(r["with"]["ready_at_submit"] for r in rows) / len(rows), 3),
        "ttft_with": ttft("with", rows), "ttft_without": ttft("without", rows),
        "ttft_with_on_model_switch": ttft("with", switches) if switches else None,
        "ttft_without_on_model_switch": ttft("without", switches) if switches else None,
        "preloads": vars(manager.preloads),
        "rows": rows,
    }


def table_rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("preload on the workload", f"{p['queries']} queries, budget {p['budget_mib']} "
             f"MiB (2 of 5 bases), {p['seconds_per_word']} s per typed word"),
            ("  hit rate / precision / ready at submit",
             f"{p['hit_rate']} / {p['precision']} / {p['ready_at_submit']}"),
            ("  TTFT with preload", _fmt(p["ttft_with"])),
            ("  TTFT without preload", _fmt(p["ttft_without"]))]
    if p["ttft_with_on_model_switch"]:
        rows += [("  ... queries needing another base: with", _fmt(p["ttft_with_on_model_switch"])),
                 ("  ... queries needing another base: without",
                  _fmt(p["ttft_without_on_model_switch"]))]
    return rows


def _fmt(s: dict[str, float]) -> str:
    return f"mean {s['mean_s']:.3f} s, median {s['median_s']:.3f} s, p90 {s['p90_s']:.3f} s " \
           f"(n={s['n']})"
