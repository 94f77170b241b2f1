"""Predictive preload: predictions from triggers, routing and history; guesses that yield."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mirador.catalog.manifest import Manifest
from mirador.models.usage import UsageLog
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.preload import Predictor, Preloader, attach
from mirador.orchestration.stages import ModelStage
from mirador.settings import ModelsConfig, Settings, load_settings
from tests.models.conftest import ManagerFactory, MiB, manifest_of, room_for_one
from tests.models.test_manager import answer, request

PERSONAS = [
    {"id": "quick", "model": "alpha", "system": "Answer."},
    {"id": "money", "model": "beta", "system": "Money.", "triggers": ["invest", "savings"]},
    {"id": "coder", "model": "gamma", "system": "Code.", "triggers": ["python", "asyncio"]},
    {"id": "coach", "model": "delta", "system": "Coach.", "triggers": ["sleep better"]},
]


def manifest(sized_ggufs: dict[str, Path]) -> Manifest:
    return manifest_of(sized_ggufs, PERSONAS)


def test_triggers_predict_while_the_word_is_still_being_typed(
        sized_ggufs: dict[str, Path]) -> None:
    predictor = Predictor(manifest(sized_ggufs))
    assert [p.model.id for p in predictor.predict("Where should I invest")] == ["beta"]
    [typing] = predictor.predict("why does my pyth")
    assert typing.model.id == "gamma" and "(typing)" in typing.reasons[0]
    assert predictor.predict("why does my py") == [], "too short a prefix to guess from"
    assert [p.model.id for p in predictor.predict("how do I SLEEP BETTER?")] == ["delta"]
    assert predictor.predict("I sleep a lot") == [], "a phrase needs all its words"


def test_the_routing_decision_and_similar_past_queries_predict_too(
        sized_ggufs: dict[str, Path], tmp_path: Path) -> None:
    usage = UsageLog(tmp_path / "usage.json")
    usage.record("How much of my salary should go to retirement?", ["money"], ["beta"])
    predictor = Predictor(manifest(sized_ggufs), plan=lambda text: ["quick", "coder"],
                          usage=usage)
    ranked = {p.model.id: p for p in predictor.predict("retirement salary advice")}
    assert set(ranked) == {"alpha", "beta", "gamma"}
    assert ranked["alpha"].reasons == ranked["gamma"].reasons == ("routing",)
    assert ranked["alpha"].score > ranked["gamma"].score, "the first stage matters most"
    assert ranked["beta"].reasons == ("similar past query",)
    assert ranked["beta"].score == 0.5, "two of four words in common"
    again = UsageLog(tmp_path / "usage.json")  # history survives a restart
    assert again.similar("retirement and my salary")[0][1].personas == ("money",)


async def test_typing_is_debounced_and_preloads_in_the_background(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    m = manifest(sized_ggufs)
    manager = make_manager(m, budget=500 * MiB)
    predictor = Predictor(m)
    calls: list[str] = []
    real_predict = predictor.predict
    predictor.predict = lambda text: calls.append(text) or real_predict(text)  # type: ignore[method-assign,func-returns-value]
    preloader = Preloader(manager, predictor, usage=None, debounce=0.05)
    for partial in ("Why does my p", "Why does my pyt", "Why does my python"):
        preloader.typing(partial)
    await asyncio.sleep(0.2)
    await preloader.settle()
    assert calls == ["Why does my python"], "only the text typing paused on is predicted"
    assert manager.is_loaded("gamma") and manager.preloads.started == 1
    await answer(manager, request(m, "coder"))
    assert manager.preloads.hits == 1 and manager.loads == {"gamma": 1}


async def test_a_guess_never_evicts_a_busy_pinned_or_just_warmed_model(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    m = manifest(sized_ggufs)
    manager = make_manager(m, budget=500 * MiB)
    await manager.ensure_loaded(m.model("alpha"))
    manager.budget = await room_for_one(manager, m.model("beta"))  # one model at a time
    stream = manager.stream_chat(request(m, "quick", max_tokens=200))
    await anext(stream)
    assert await manager.preload(m.model("beta")) is False, "alpha is answering"
    await stream.aclose()  # type: ignore[attr-defined]
    manager.pin("alpha")
    assert await manager.preload(m.model("beta")) is False, "alpha is pinned"
    manager.pin("alpha", False)
    await manager.warm(m.model("alpha"))  # a query is about to use it
    assert await manager.preload(m.model("beta")) is False, "alpha was just warmed"
    assert manager.is_loaded("alpha") and manager.preloads.skipped == 3
    await manager.ensure_loaded(m.model("beta"))  # a real request may evict it
    assert manager.is_loaded("beta") and not manager.is_loaded("alpha")


async def test_a_wrong_guess_costs_little_and_is_counted(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    m = manifest(sized_ggufs)
    manager = make_manager(m, budget=500 * MiB)
    assert await manager.preload(m.model("beta")) is True
    manager.budget = await room_for_one(manager, m.model("gamma"))
    assert await answer(manager, request(m, "coder")) is not None  # needed gamma instead
    assert manager.is_loaded("gamma") and not manager.is_loaded("beta")
    assert manager.preloads.wasted == 1 and manager.preloads.hits == 0


async def test_guesses_yield_to_real_requests(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    m = manifest(sized_ggufs)
    manager = make_manager(m, budget=500 * MiB)
    first = asyncio.ensure_future(manager.ensure_loaded(m.model("alpha")))
    await asyncio.sleep(0)  # alpha's load holds the gate
    guess = manager.preload(m.model("beta"))
    await asyncio.sleep(0)
    real = asyncio.ensure_future(manager.ensure_loaded(m.model("gamma")))
    await asyncio.gather(first, guess, real)
    order = [model for _, what, model, _ in manager.history if what in ("load", "preload")]
    assert order == ["alpha", "gamma", "beta"], "the real request went before the guess"


async def test_answers_record_usage_and_score_the_guesses(
        isolated_home: Path, sized_ggufs: dict[str, Path]) -> None:
    m = manifest(sized_ggufs)
    settings: Settings = load_settings(models=ModelsConfig(budget=500 * MiB,
                                                           preload_debounce=0.01))
    async with Orchestrator(settings, manifest=m) as orchestrator:
        preloader = attach(orchestrator)
        assert preloader is not None and orchestrator.preloader is preloader
        preloader.typing("how should I invest my savings")
        await preloader.settle()
        assert orchestrator.manager.is_loaded("beta")
        stage = ModelStage("answer", "money", 0.9, timeout=60, max_tokens=3)
        done = await orchestrator.answer("how should I invest my savings", stages=[stage])
        assert done.status == "ok", done.error
    data = json.loads((settings.models_dir / "usage.json").read_text())
    # the trigger guessed beta; routing guessed alpha (the 'quick' stage), which went unused
    assert data["preload"] == {"queries": 1, "needed": 1, "covered": 1, "predicted": 2,
                               "unused": 1}
    assert data["queries"][-1]["personas"] == ["money"]
    assert data["queries"][-1]["models"] == ["beta"]


async def test_preload_can_be_turned_off(settings: Settings) -> None:
    off = load_settings(models=ModelsConfig(preload=False))
    async with Orchestrator(off) as orchestrator:
        assert attach(orchestrator) is None and orchestrator.preloader is None
