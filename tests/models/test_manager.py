"""The model manager on real llama.cpp: lazy loads, the budget, eviction, pins, keep-alive."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mirador.backends import ChatRequest, Message, TextPiece
from mirador.catalog.manifest import Manifest
from mirador.embeddings import load_embedder
from mirador.errors import ModelBudgetError
from mirador.host import ResidentPeak
from mirador.models.clock import ManualClock
from mirador.models.manager import ModelManager
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings
from tests.models.conftest import ManagerFactory, MiB, manifest_of, room_for_one, until

PERSONAS = [
    {"id": "a_plan", "model": "alpha", "system": "Plan."},
    {"id": "a_critic", "model": "alpha", "system": "Criticise.", "options": {"top_k": 5}},
    {"id": "a_brief", "model": "a_plan", "system": "Be brief."},
    {"id": "b_one", "model": "beta", "system": "One."},
    {"id": "g_one", "model": "gamma", "system": "Gamma."},
    {"id": "d_one", "model": "delta", "system": "Delta."},
]


NOT_A_MODEL = 16 * MiB  # resident memory that is no model's: see the mixed-run test


def request(manifest: Manifest, persona: str, max_tokens: int = 3) -> ChatRequest:
    resolved = manifest.resolve(persona)
    messages = (Message("system", resolved.system or ""), Message("user", "plan my day"))
    options = resolved.options.merged(None).model_copy(
        update={"max_tokens": max_tokens, "temperature": 0.0, "stop": ["zzz"]})
    return ChatRequest(model=resolved.model, messages=messages, options=options,
                       loras=resolved.loras)


async def answer(manager: ModelManager, req: ChatRequest) -> str:
    return "".join([e.text async for e in manager.stream_chat(req) if isinstance(e, TextPiece)])


async def test_loads_on_first_use_and_concurrent_requests_share_one_load(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs, PERSONAS)
    manager = make_manager(manifest, budget=500 * MiB)
    assert await manager.ps() == []
    await asyncio.gather(*(answer(manager, request(manifest, "a_plan")) for _ in range(3)),
                         manager.ensure_loaded(manifest.model("alpha")))
    assert manager.loads == {"alpha": 1}
    [row] = await manager.ps()
    assert row.model_id == "alpha" and row.backend == "llamacpp"
    assert 17 * MiB < row.size_bytes < 60 * MiB, "reserved at what loading measured"


async def test_persona_switches_on_a_shared_base_never_reload_it(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs, PERSONAS)
    manager = make_manager(manifest, budget=500 * MiB)
    for persona in ["a_plan", "a_critic", "a_brief", "a_plan", "a_critic"]:
        assert await answer(manager, request(manifest, persona)) is not None
    assert manager.loads == {"alpha": 1}
    assert [what for _, what, _, _ in manager.history] == ["load"]


async def test_a_mixed_run_stays_within_a_budget_smaller_than_all_models(
        settings: Settings, make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    """The issue's 'done': mixed queries over four models under a budget that holds about
    two; the books and the process's resident memory stay within it, and a persona switch
    on a loaded base never reloads it."""
    manifest = manifest_of(sized_ggufs, PERSONAS)
    budget = 62 * MiB  # all four together take at least 4 x 17.4 MB of weights
    manager = make_manager(manifest, budget=budget)
    judge = load_embedder(settings)  # the quality gate's MiniLM is not a model in the budget
    warmup = make_manager(manifest, budget=budget)  # pay llama.cpp's one-time set-up first
    warm = Orchestrator(settings, manifest=manifest, manager=warmup, embedder=judge)
    await warm.answer("plan my day", stages=[ModelStage(f"w{i}", "d_one", 0.5, max_tokens=3)
                                             for i in range(2)])  # ...and the gate's
    await warmup.aclose()
    orchestrator = Orchestrator(settings, manifest=manifest, manager=manager, embedder=judge)
    runs = [["a_plan", "a_critic"], ["b_one"], ["g_one", "a_brief"], ["d_one", "b_one"],
            ["a_plan", "a_brief", "a_critic"], ["g_one"], ["d_one"], ["a_critic", "a_plan"]]
    with ResidentPeak() as peak:
        for personas in runs:
            stages = [ModelStage(f"s{i}", p, 0.5, timeout=60, max_tokens=3)
                      for i, p in enumerate(personas)]
            done = await orchestrator.answer("plan my day", stages=stages)
            assert done.status in ("ok", "partial"), done.error
            assert _no_reload_between_same_base_steps(manager, manifest, personas)
    assert manager.peak_bytes <= budget
    assert sum(manager.evictions.values()) > 0, "the budget must have forced evictions"
    # Besides the models, the process's heap, llama.cpp's per-call scratch and the judge's
    # ONNX arena (which grows with the longest text it has scored) are resident too.
    assert peak.growth <= budget + NOT_A_MODEL, f"resident memory grew {peak.growth / MiB:.1f} MiB"


def _no_reload_between_same_base_steps(manager: ModelManager, manifest: Manifest,
                                       personas: list[str]) -> bool:
    """Within one answer, each base model was loaded at most once."""
    recent = [mid for _, what, mid, _ in list(manager.history)[-len(personas) * 2:]
              if what == "load"]
    bases = [manifest.resolve(p).model.id for p in personas]
    return all(recent.count(base) <= 1 for base in set(bases))


async def test_eviction_takes_lower_priority_first_then_least_recently_used(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    entries = [{"id": n, "path": str(p), "context_length": 512, "priority": prio}
               for (n, p), prio in zip(sized_ggufs.items(), (5, 0, 0, 0), strict=True)]
    manifest = manifest_of(entries)
    manager = make_manager(manifest, budget=500 * MiB)
    for name in ("alpha", "beta", "gamma"):  # alpha: oldest but highest priority
        await manager.ensure_loaded(manifest.model(name))
    manager.budget = manager.used_bytes + 22 * MiB  # room for one more after one eviction
    await manager.ensure_loaded(manifest.model("delta"))
    loaded = {row.model_id for row in await manager.ps()}
    assert loaded == {"alpha", "gamma", "delta"}, "priority 0 and least recent goes first"
    assert manager.used_bytes <= manager.budget


async def test_pinned_models_are_never_evicted(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    entries = [{"id": n, "path": str(p), "context_length": 512, "pinned": n == "alpha"}
               for n, p in sized_ggufs.items()]
    manifest = manifest_of(entries)
    manager = make_manager(manifest, budget=500 * MiB)
    for name in ("alpha", "beta", "gamma"):
        await manager.ensure_loaded(manifest.model(name))
    manager.pin("beta")  # at run time, kept under the home
    manager.budget = manager.used_bytes + 22 * MiB
    await manager.ensure_loaded(manifest.model("delta"))
    loaded = {row.model_id for row in await manager.ps()}
    assert loaded == {"alpha", "beta", "delta"}
    pins = json.loads((manager.settings.models_dir / "pins.json").read_text())
    assert pins == ["beta"]
    manager.pin("delta")
    manager.budget = manager.used_bytes + 1
    with pytest.raises(ModelBudgetError, match=r"'alpha' \(.*pinned"):
        await manager.ensure_loaded(manifest.model("gamma"))  # only pinned ones could go


async def test_a_load_waits_for_a_busy_model_then_names_it(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs, PERSONAS)
    manager = make_manager(manifest, budget=500 * MiB, busy_wait=0.3)
    await manager.ensure_loaded(manifest.model("alpha"))
    manager.budget = await room_for_one(manager, manifest.model("beta"))  # once alpha goes
    stream = manager.stream_chat(request(manifest, "a_plan", max_tokens=200))
    await anext(stream)  # alpha is answering now
    started = asyncio.get_running_loop().time()
    with pytest.raises(ModelBudgetError, match=r"'alpha' \(.*answering a request\)"):
        await manager.ensure_loaded(manifest.model("beta"))
    assert asyncio.get_running_loop().time() - started >= 0.3
    await stream.aclose()  # type: ignore[attr-defined]
    assert manager.is_loaded("alpha")


async def test_a_load_proceeds_once_the_busy_model_finishes(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs, PERSONAS)
    manager = make_manager(manifest, budget=500 * MiB, busy_wait=30)
    await manager.ensure_loaded(manifest.model("alpha"))
    manager.budget = await room_for_one(manager, manifest.model("beta"))  # once alpha goes
    stream = manager.stream_chat(request(manifest, "a_plan", max_tokens=200))
    await anext(stream)
    waiting = asyncio.ensure_future(manager.ensure_loaded(manifest.model("beta")))
    await asyncio.sleep(0.2)
    assert not waiting.done() and manager.is_loaded("alpha"), "a busy model is never evicted"
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(waiting, 10)
    assert manager.is_loaded("beta") and not manager.is_loaded("alpha")


async def test_keep_alive_unloads_idle_models_but_not_pinned_ones(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    entries = [{"id": n, "path": str(p), "context_length": 512, "keep_alive": 3600,
                "pinned": n == "beta"} for n, p in sized_ggufs.items()]
    manifest = manifest_of(entries)
    clock = ManualClock()
    manager = make_manager(manifest, budget=500 * MiB, clock=clock)
    await manager.ensure_loaded(manifest.model("alpha"))
    await manager.ensure_loaded(manifest.model("beta"))
    clock.advance(3599)
    assert manager.keepalive.expires_in(manifest.model("alpha")) == 1
    assert await manager.keepalive.reap() == [] and manager.is_loaded("alpha")
    clock.advance(1)  # the idle loop wakes on the clock: a timer would sleep 30 s
    await until(manager, lambda: not manager.is_loaded("alpha"), seconds=10)
    assert manager.is_loaded("beta")
    assert manager.evictions["expired"] == 1


async def test_a_model_larger_than_the_whole_budget_fails_at_once(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs)
    manager = make_manager(manifest, budget=5 * MiB)
    with pytest.raises(ModelBudgetError, match="more than the whole memory budget.*models.budget"):
        await manager.ensure_loaded(manifest.model("alpha"))
    assert manager.loads == {}


async def test_a_measured_load_corrects_the_next_estimate(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs)
    first = make_manager(manifest, budget=500 * MiB)
    await first.ensure_loaded(manifest.model("alpha"))
    measured = first.used_bytes
    raw = first.backend("llamacpp").estimate_bytes(manifest.model("alpha"))  # type: ignore[attr-defined]
    await first.aclose()
    profile = json.loads((first.settings.models_dir / "memory.json").read_text())
    assert profile["models"]["alpha"]["measured"] == measured
    assert profile["models"]["alpha"]["estimate"] == raw
    later = make_manager(manifest, budget=500 * MiB)
    assert later.profile.corrected("alpha", raw) == measured


async def test_memory_another_model_takes_meanwhile_is_not_charged_to_a_stream(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = manifest_of(sized_ggufs, PERSONAS)
    manager = make_manager(manifest, budget=500 * MiB)
    await manager.ensure_loaded(manifest.model("alpha"))
    before = manager.used_bytes
    stream = manager.stream_chat(request(manifest, "a_plan", max_tokens=200))
    await anext(stream)
    loading = asyncio.ensure_future(manager.ensure_loaded(manifest.model("beta")))
    await asyncio.sleep(0.01)  # beta's weights are arriving while alpha answers
    await stream.aclose()  # type: ignore[attr-defined]
    await loading
    [alpha] = [s for s in manager.status() if s.model_id == "alpha"]
    assert alpha.bytes - before < 2 * MiB, "beta's load was charged to alpha"
