"""Budgets, corrected estimates, pins and the priority gate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mirador.models.budget import MemoryProfile, resolve_budget
from mirador.models.gate import BACKGROUND, REAL, PriorityGate
from mirador.models.pins import PinStore
from mirador.settings import ModelsConfig, load_settings

GiB = 1 << 30


def test_the_budget_is_a_size_or_a_fraction_of_available_ram(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("models: {budget: 1500MiB}\n")
    assert resolve_budget(load_settings().config.models) == 1500 * (1 << 20)
    assert resolve_budget(ModelsConfig(budget_fraction=0.25), available=8 * GiB) == 2 * GiB
    assert resolve_budget(ModelsConfig()) > 0


def test_measurements_replace_estimates_and_raise_unmeasured_ones(tmp_path: Path) -> None:
    profile = MemoryProfile(tmp_path / "memory.json")
    assert profile.corrected("a", 100) == 100
    assert profile.record("a", 100, 130) == 130
    assert profile.corrected("a", 100) == 130, "a measured model is reserved as measured"
    assert profile.corrected("b", 100) > 100, "others are scaled up by what was learned"
    assert profile.record("c", 100, 10) == profile.corrected("c", 100), "ignored: disturbed"
    assert profile.record("d", 100, 60) == 60
    assert profile.corrected("e", 100) >= 100, "an unmeasured estimate is never lowered"
    assert profile.corrected("a", 300) != 130, "a changed model is estimated afresh"
    again = MemoryProfile(tmp_path / "memory.json")
    assert again.corrected("a", 100) == 130 and again.ratio == profile.ratio


def test_a_damaged_profile_or_pin_file_costs_nothing(tmp_path: Path) -> None:
    (tmp_path / "memory.json").write_text("{not json")
    assert MemoryProfile(tmp_path / "memory.json").corrected("a", 100) == 100
    (tmp_path / "pins.json").write_text("[[")
    pins = PinStore(tmp_path / "pins.json")
    assert pins.pinned() == set()
    pins.set("a")
    assert json.loads((tmp_path / "pins.json").read_text()) == ["a"]


def test_a_pin_set_elsewhere_is_seen(tmp_path: Path) -> None:
    mine, theirs = PinStore(tmp_path / "pins.json"), PinStore(tmp_path / "pins.json")
    assert mine.pinned() == set()
    theirs.set("gemma")
    assert mine.pinned() == {"gemma"}
    theirs.set("gemma", False)
    assert mine.pinned() == set()


async def test_the_gate_serves_real_requests_before_guesses() -> None:
    gate, order = PriorityGate(), []

    async def take(name: str, priority: int) -> None:
        async with gate.hold(priority):
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.ensure_future(take("first", BACKGROUND))
    await asyncio.sleep(0)
    waiting = [asyncio.ensure_future(take(n, p)) for n, p in
               (("guess1", BACKGROUND), ("real1", REAL), ("guess2", BACKGROUND), ("real2", REAL))]
    await asyncio.sleep(0)
    assert gate.waiting(REAL) == 2 and gate.waiting(BACKGROUND) == 2
    cancelled = asyncio.ensure_future(take("cancelled", REAL))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(first, *waiting)
    assert order == ["first", "real1", "real2", "guess1", "guess2"]
    assert not gate.busy
