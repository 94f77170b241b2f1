"""What the model manager holds: one slot per base model, and how it reports them.

A backend that runs a limited number of streams at once on one loaded model
(llama.cpp's high-level API: one sequence per context) says so with `TakesTurns`;
the manager then queues requests for that model first in, first out, and tells
the stream's reader when its turn starts (`Admitted`), so the time spent waiting
is bounded on its own (`models.queue_wait`) and not charged to first-token timeouts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mirador.backends import Backend
from mirador.catalog.manifest import LoraAdapter, ModelEntry

LOADING, READY, UNLOADING = "loading", "ready", "unloading"


@runtime_checkable
class HostsAdapters(Protocol):
    """A backend that applies LoRA adapters per request on a shared base model."""

    async def load_adapter(self, model: ModelEntry, lora: LoraAdapter) -> None: ...

    async def unload_adapter(self, model: ModelEntry, lora: LoraAdapter) -> None: ...


@runtime_checkable
class TakesTurns(Protocol):
    """A backend that serves at most `sequences(model)` streams at once on a loaded model."""

    def sequences(self, model: ModelEntry) -> int: ...


@runtime_checkable
class SizesContext(Protocol):
    """A backend that knows the context window (in tokens) it runs `model` with."""

    def context_size(self, model: ModelEntry) -> int: ...


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
    turns: asyncio.Semaphore | None = None  # FIFO turns, for a backend that TakesTurns
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
