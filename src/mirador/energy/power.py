"""The power state: on battery or plugged in, and how full the battery is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("mirador.energy")


@dataclass(frozen=True)
class PowerState:
    """What powers the machine now. `percent` and `plugged` are None without a battery
    (a desktop or a virtual machine), which counts as plugged in."""

    percent: float | None = None
    plugged: bool | None = None
    source: str = "no battery"

    @property
    def on_battery(self) -> bool:
        return self.plugged is False

    def describe(self) -> str:
        if self.percent is None:
            return f"no battery ({self.source})"
        where = "plugged in" if self.plugged else "on battery"
        return f"battery {self.percent:.0f}%, {where} ({self.source})"


class PowerSource(Protocol):
    """Anything that can say what powers the machine now."""

    def read(self) -> PowerState: ...


class PsutilPower:
    """The real power state, from psutil (battery percent and whether it is plugged in)."""

    def read(self) -> PowerState:
        import psutil  # imported here: a second of start-up nobody else needs

        try:
            battery = psutil.sensors_battery()
        except (OSError, RuntimeError) as exc:  # an unreadable sensor is no battery
            log.info("the battery cannot be read (%s); treating the machine as plugged in", exc)
            return PowerState(source="battery unreadable")
        if battery is None:
            return PowerState(source="psutil")
        plugged = battery.power_plugged if battery.power_plugged is not None else True
        return PowerState(float(battery.percent), bool(plugged), "psutil")


class ScriptedPower:
    """A power state the caller sets: for tests, and for `--power` experiments."""

    def __init__(self, percent: float | None = None, plugged: bool | None = None) -> None:
        self.state = PowerState(percent, plugged, "scripted")

    def set(self, percent: float | None, plugged: bool | None) -> None:
        self.state = PowerState(percent, plugged, "scripted")

    def read(self) -> PowerState:
        return self.state


class PowerWatcher:
    """Polls a power source and calls `on_change` when the state changes.

    Polling every `interval` seconds (one by default) keeps a switch within a second
    of unplugging, at the cost of one sysfs read a second.
    """

    def __init__(self, source: PowerSource, on_change: Callable[[PowerState], None],
                 interval: float = 1.0) -> None:
        self.source, self.on_change, self.interval = source, on_change, interval
        self.state = source.read()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._watch())

    def poll(self) -> PowerState:
        """Read the source once; tell `on_change` if the state moved."""
        state = self.source.read()
        if state != self.state:
            self.state = state
            self.on_change(state)
        return state

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.poll()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
