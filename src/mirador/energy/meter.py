"""Joules: measured by Linux RAPL where it is readable, else estimated from CPU time.

RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`) counts the whole CPU package's
energy in microjoules and wraps at `max_energy_range_uj`; the meter adds up the
deltas so a wrap is never a negative answer. It is whole-machine energy, so other
programs' work counts too. Where RAPL is absent or root-only (most laptops since
2020, and virtual machines), the meter estimates: this process's CPU seconds (its
threads, so llama.cpp's, and its children) times `watts_per_core`. That counts
nothing a separate server (Ollama) spends. Every figure says which method made it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

RAPL_ROOT = Path("/sys/class/powercap")
RAPL = "rapl"
CPU_TIME = "cpu-time estimate"


@dataclass(frozen=True)
class Energy:
    """Joules spent, and how they were found."""

    joules: float
    method: str


@dataclass
class _Domain:
    counter: Path
    wrap: int
    last: int


class EnergyMeter:
    """A running total of joules since the meter was made; `spent(since)` for an interval.

    Thread-safe: stages and answers read it from the event loop and worker threads.
    """

    def __init__(self, watts_per_core: float = 7.5, rapl_root: Path = RAPL_ROOT) -> None:
        self.watts_per_core = watts_per_core
        self._domains = _rapl_domains(rapl_root)
        self.method = RAPL if self._domains else CPU_TIME
        self._total = 0.0
        self._lock = threading.Lock()

    def read(self) -> float:
        """Joules so far (a monotone total with an arbitrary origin)."""
        if not self._domains:
            return _cpu_seconds() * self.watts_per_core
        with self._lock:
            for domain in self._domains:
                now = _read_int(domain.counter)
                delta = now - domain.last if now >= domain.last else now + domain.wrap - domain.last
                domain.last = now
                self._total += delta / 1e6
            return self._total

    def spent(self, since: float) -> Energy:
        """The joules spent since the total read `since`."""
        return Energy(max(0.0, self.read() - since), self.method)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _rapl_domains(root: Path) -> list[_Domain]:
    """The readable top-level RAPL domains (packages, not their sub-zones, which they
    already include); none if any is unreadable, so the method is one or the other."""
    if not root.is_dir():
        return []
    domains = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue
        try:
            wrap = _read_int(zone / "max_energy_range_uj")
            domains.append(_Domain(zone / "energy_uj", wrap, _read_int(zone / "energy_uj")))
        except (OSError, ValueError):  # root-only since 2020 on most kernels
            return []
    return domains


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())
