"""The power state and the energy meter: RAPL counters (with wrap-around) and the
CPU-time estimate, measured on this machine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mirador.energy.meter import CPU_TIME, RAPL, EnergyMeter
from mirador.energy.power import PowerState, PowerWatcher, PsutilPower, ScriptedPower


def write_zone(root: Path, name: str, energy: int, wrap: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{wrap}\n")
    return zone


def test_rapl_counts_package_domains_and_survives_a_wrap(tmp_path: Path) -> None:
    package = write_zone(tmp_path, "intel-rapl:0", 900_000, wrap=1_000_000)
    write_zone(tmp_path, "intel-rapl:0:0", 5, wrap=1_000_000)  # a sub-zone: inside package
    meter = EnergyMeter(rapl_root=tmp_path)
    assert meter.method == RAPL
    start = meter.read()
    (package / "energy_uj").write_text("950000\n")
    assert meter.spent(start).joules == pytest.approx(0.05)
    (package / "energy_uj").write_text("100000\n")  # wrapped: +50,000 then +100,000 µJ
    assert meter.spent(start).joules == pytest.approx(0.2)


def test_unreadable_rapl_falls_back_to_the_cpu_time_estimate(tmp_path: Path) -> None:
    zone = write_zone(tmp_path, "intel-rapl:0", 1, wrap=10)
    (zone / "energy_uj").unlink()  # as when the counter is root-only
    assert EnergyMeter(rapl_root=tmp_path).method == CPU_TIME
    assert EnergyMeter(rapl_root=tmp_path / "absent").method == CPU_TIME


def test_the_cpu_time_estimate_grows_with_work_at_the_configured_watts() -> None:
    meter = EnergyMeter(watts_per_core=10.0, rapl_root=Path("/nonexistent"))
    start = meter.read()
    began = time.process_time()
    while time.process_time() - began < 0.2:  # burn 0.2 CPU seconds
        sum(range(1000))
    spent = meter.spent(start)
    assert spent.method == CPU_TIME
    assert 1.5 <= spent.joules <= 4.0, "0.2 s of one core at 10 W is about 2 J"


def test_psutil_reads_this_machine() -> None:
    state = PsutilPower().read()  # a VM: no battery, which counts as plugged in
    assert isinstance(state, PowerState) and not state.on_battery
    assert state.describe()


async def test_the_watcher_reports_an_unplug_within_a_second() -> None:
    power = ScriptedPower(80, plugged=True)
    seen: list[PowerState] = []
    watcher = PowerWatcher(power, seen.append, interval=0.05)
    watcher.start()
    try:
        power.set(80, plugged=False)
        for _ in range(20):
            await asyncio.sleep(0.05)
            if seen:
                break
        assert seen and seen[-1].on_battery
    finally:
        await watcher.aclose()
