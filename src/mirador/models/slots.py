"""What the model manager holds: one slot per base model, the table of them, the
ledger of what was done, and how they are reported (`ps`, error messages).

`Admitted` is the event a stream yields when its turn on a model starts
(see `mirador.models.turns`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mirador.backends import Backend
from mirador.catalog.manifest import ModelEntry
from mirador.catalog.sizes import format_bytes
from mirador.models.policy import Held

LOADING, READY, UNLOADING = "loading", "ready", "unloading"


@dataclass(frozen=True)
class Admitted:
    """A stream's turn on its model has begun, after `waited` seconds in the queue."""

    waited: float = 0.0
    ahead: int = 0  # requests that held or were waiting for the model when this one asked


@dataclass(eq=False)
class Slot:
    """One base model the manager holds (or is loading, or unloading)."""

    model: ModelEntry
    backend: Backend
    reserved: int
    state: str = LOADING
    task: asyncio.Future[Any] | None = None
    busy: int = 0
    last_used: float = 0.0
    protected_until: float = 0.0
    preloaded: bool = False  # loaded on a guess and not used since
    adapters: dict[str, int] = field(default_factory=dict)  # path -> bytes
    estimate: int = 0  # the raw estimate before loading (the profile's key)
    loaded: int = 0  # what the load itself took (measured, else estimated)
    watch: int = 0  # streams still to watch for growth the load did not show
    turns: asyncio.Semaphore | None = None  # FIFO turns, for a backend that takes turns
    waiting: int = 0  # requests queued for a turn now

    @property
    def total(self) -> int:
        return self.reserved + sum(self.adapters.values())


@dataclass(frozen=True)
class SlotStatus:
    model_id: str
    backend: str
    state: str
    bytes: int
    busy: int
    idle_seconds: float
    pinned: bool
    priority: int
    adapters: tuple[str, ...]
    preloaded: bool


@dataclass
class PreloadCounters:
    """How guesses fared: started, used before eviction, evicted unused, skipped for room."""

    started: int = 0
    hits: int = 0
    wasted: int = 0
    skipped: int = 0


@dataclass
class Ledger:
    """What the manager has done: loads by model, unloads by reason, how guesses fared,
    recent events, and an epoch that moves whenever memory may move."""

    loads: Counter[str] = field(default_factory=Counter)  # real loads by model id
    evictions: Counter[str] = field(default_factory=Counter)  # unloads by reason
    preloads: PreloadCounters = field(default_factory=PreloadCounters)
    history: deque[tuple[float, str, str, int]] = field(
        default_factory=lambda: deque(maxlen=500))
    """(time, what, model id, bytes): load, preload, evicted, expired, unloaded, adapter."""
    epoch: int = 0  # counts loads and unloads, so growth is only measured between them

    def record(self, what: str, slot: Slot, now: float) -> None:
        self.epoch += 1
        self.history.append((now, what, slot.model.id, slot.total))


def why_held(slot: Slot, pinned: bool) -> str:
    """Why a model's memory cannot be taken now, for an error message."""
    if slot.busy:
        return "answering a request"
    if pinned:
        return "pinned"
    return slot.state if slot.state != READY else "idle"


def detail(status: SlotStatus) -> str:
    """One line for `ps`: pinned, busy, idle time, priority, adapters."""
    parts = ["pinned" if status.pinned else "", f"busy {status.busy}" if status.busy else "",
             f"idle {status.idle_seconds:.0f}s", f"priority {status.priority}",
             f"{len(status.adapters)} LoRA" if status.adapters else "",
             "preloaded" if status.preloaded else ""]
    return ", ".join(p for p in parts if p)


class SlotTable:
    """The slots the manager holds, by model id, and the bytes they add up to."""

    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}
        self.peak_bytes = 0
        # the slot for a model id, or None: the dict's own lookup, as the warm path is hot
        self.get: Callable[[str], Slot | None] = self._slots.get

    def __iter__(self) -> Iterator[Slot]:
        return iter(list(self._slots.values()))

    def __bool__(self) -> bool:
        return bool(self._slots)

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._slots

    def pick(self, model_ids: list[str]) -> list[Slot]:
        """The slots for `model_ids`, in that order (ids no longer held are left out)."""
        return [slot for i in model_ids if (slot := self._slots.get(i)) is not None]

    def add(self, slot: Slot) -> None:
        self._slots[slot.model.id] = slot
        self.note_peak()

    def remove(self, slot: Slot) -> bool:
        """Forget `slot` if it is still the one held for its model; whether it was."""
        if self._slots.get(slot.model.id) is slot:
            del self._slots[slot.model.id]
            return True
        return False

    def clear(self) -> None:
        self._slots.clear()

    def is_current(self, slot: Slot) -> bool:
        """Whether `slot` is ready and still the one held for its model."""
        return slot.state == READY and self._slots.get(slot.model.id) is slot

    @property
    def used_bytes(self) -> int:
        return sum(s.total for s in self._slots.values())

    def note_peak(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self.used_bytes)

    def settled(self) -> bool:
        """Nothing is answering, loading or unloading (memory moves for no one else)."""
        return not any(s.busy or s.state != READY for s in self._slots.values())

    def held(self, pinned: Callable[[ModelEntry], bool],
             keep_alive: Callable[[ModelEntry], float | None]) -> list[Held]:
        """What the eviction policy needs to know about each slot."""
        return [Held(s.model.id, s.total, s.model.priority, s.last_used, s.busy > 0,
                     s.state == READY, pinned(s.model), s.protected_until,
                     keep_alive(s.model)) for s in self._slots.values()]

    def holders(self, keep: Slot | None, pinned: Callable[[ModelEntry], bool]) -> str:
        """Who holds the memory and why, for an error message."""
        found = [f"'{s.model.id}' ({format_bytes(s.total)}, {why_held(s, pinned(s.model))})"
                 for s in self._slots.values() if s is not keep]
        return ", ".join(found) or "nothing"
