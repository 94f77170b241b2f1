"""The model manager: one place that decides what is loaded, within a memory budget.

Everything that runs a model goes through here. A model loads on first use
(concurrent requests share one load) after room is made for it: idle models
are evicted least-recently-used first, lower priority before higher, never a
pinned model and never one that is answering (a load waits for that up to
`models.busy_wait`, then fails naming what holds the memory). Personas on one
base model share its single loaded instance; their LoRA adapters are read once
and count against the budget with their base. Idle models unload after their
keep-alive. Warm-ups and preloads (guesses) run in the background, behind
real requests, and only ever evict idle models nobody just asked for.

The pieces: `policy.EvictionPolicy` decides (pure, on an injected clock),
`slots.SlotTable` holds, `loader.Loader` loads, unloads and makes room, and
`keepalive.KeepAlive` unloads idle models, `warmups.Warmups` runs warm-ups and
guesses in the background, `sharing.SharedLoads` lets concurrent requests share one
load, `pool.BackendPool` holds the backends, and this module leases loaded models
to streams.

    manager = ModelManager(settings, manifest)
    async for event in manager.stream_chat(request):  # loads, evicting if needed
        ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from pathlib import Path

from mirador.backends import (
    Backend,
    BackendEvent,
    ChatRequest,
    LoadedModel,
    adapters_of,
    create_backend,
    token_counter_of,
)
from mirador.catalog.manifest import LoraAdapter, Manifest, ModelEntry
from mirador.host import resident_bytes
from mirador.models.budget import MemoryProfile, resolve_budget, server_names
from mirador.models.clock import Changes, Clock, MonotonicClock
from mirador.models.gate import REAL
from mirador.models.keepalive import KeepAlive
from mirador.models.loader import Loader, adapter_path
from mirador.models.pins import PinStore
from mirador.models.policy import EvictionPolicy
from mirador.models.pool import BackendFactory, BackendPool
from mirador.models.sharing import SharedLoads
from mirador.models.slots import (
    READY,
    Admitted,
    Ledger,
    Slot,
    SlotStatus,
    SlotTable,
    detail,
)
from mirador.models.turns import turn
from mirador.models.warmups import Warmups
from mirador.settings import Settings
from mirador.text_tokens import estimate_tokens

log = logging.getLogger("mirador.models")
__all__ = ["BackendFactory", "ModelManager"]


class ModelManager:
    """Loads models lazily under a memory budget, evicts, warms and preloads them."""

    def __init__(self, settings: Settings, manifest: Manifest,
                 backend_factory: BackendFactory = create_backend, *,
                 budget: int | None = None, clock: Clock | None = None,
                 state_dir: Path | None = None) -> None:
        self.settings, self.manifest = settings, manifest
        self.config = settings.config.models
        state = state_dir if state_dir is not None else settings.models_dir
        self.profile = MemoryProfile(state / "memory.json")
        self.pins = PinStore(state / "pins.json")
        self.clock = clock or MonotonicClock()
        self.policy = EvictionPolicy(self.clock.now)
        self.ledger = Ledger()
        self.loads, self.evictions = self.ledger.loads, self.ledger.evictions
        self.preloads, self.history = self.ledger.preloads, self.ledger.history
        self._slots = SlotTable()
        self._changes = Changes(self.clock)
        self.loader = Loader(
            settings, budget if budget is not None else resolve_budget(self.config),
            table=self._slots, policy=self.policy, profile=self.profile, ledger=self.ledger,
            changes=self._changes, pinned=self.is_pinned,
            keep_alive=lambda model: self.keepalive.seconds(model))
        self.keepalive = KeepAlive(self.config, self._slots, self.policy, self.loader,
                                   self._changes)
        self.backends = BackendPool(settings, backend_factory)
        self._loads = SharedLoads(self._slots, self.loader, self.keepalive, self.backends,
                                  self._changes)
        self.warmups = Warmups(self._loads.ready, self._slots, self.clock, self.ledger)

    # -- backends ------------------------------------------------------------------

    def backend(self, name: str) -> Backend:
        """The backend named `name`, created on first use; BackendError if it does not keep
        the capabilities it declares."""
        return self.backends.get(name)

    def use_backend(self, name: str, backend: Backend) -> None:
        """Serve `name` with this instance (a plugin's, or a test's); its owner closes it."""
        self.backends.use(name, backend)

    # -- what is held ----------------------------------------------------------------

    @property
    def budget(self) -> int:
        return self.loader.budget

    @budget.setter
    def budget(self, value: int) -> None:
        self.loader.budget = value

    @property
    def used_bytes(self) -> int:
        return self._slots.used_bytes

    @property
    def peak_bytes(self) -> int:
        """The most the loaded models were reserved at once."""
        return self._slots.peak_bytes

    def is_loaded(self, model_id: str) -> bool:
        slot = self._slots.get(model_id)
        return slot is not None and slot.state == READY

    def is_pinned(self, model: ModelEntry) -> bool:
        return model.pinned or model.id in self.pins.pinned()

    def pin(self, model_id: str, pinned: bool = True) -> None:
        """Never evict `model_id` (or allow it again); kept under the home for every process."""
        self.pins.set(model_id, pinned)

    def status(self) -> list[SlotStatus]:
        now = self.clock.now()
        return [SlotStatus(s.model.id, s.model.backend, s.state, s.total, s.busy,
                           round(now - s.last_used, 3), self.is_pinned(s.model),
                           s.model.priority, tuple(s.adapters), s.preloaded)
                for s in self._slots]

    async def ps(self) -> list[LoadedModel]:
        """The models held now: the manager's, then any a server holds that it did not load."""
        listings = {}
        for backend in self.backends:
            listings[id(backend)] = await self.loader.listing(backend)
            if not backend.capabilities.in_process:
                self.loader.sync(backend, listings[id(backend)])
        rows = [LoadedModel(model_id=s.model_id, size_bytes=s.bytes, backend=s.backend,
                            detail=detail(s)) for s in self.status() if s.state == READY]
        mine = {name for s in self._slots for name in server_names(s.model)}
        rows.extend(LoadedModel(m.model_id, m.size_bytes, m.backend, "not loaded by Mirador")
                    for listing in listings.values() for m in listing if m.model_id not in mine)
        return rows

    # -- loading -------------------------------------------------------------------

    async def ensure_loaded(self, model: ModelEntry) -> None:
        """Load `model` now (evicting, or waiting for room) unless it is loaded already."""
        slot = self._ready_now(model.id) or await self._loads.ready(model, REAL)
        self._touch(slot, real=True)

    def warm(self, model: ModelEntry) -> asyncio.Task[None]:
        """Start loading a model a query will need, in the background and behind real
        requests; a failure surfaces when the model is used."""
        return self.warmups.warm(model)

    def preload(self, model: ModelEntry) -> asyncio.Task[bool]:
        """Load a model on a guess, in the background: True if it ended up loaded. A guess
        never waits, never evicts a pinned, busy or just-requested model, and costs little."""
        return self.warmups.preload(model)

    async def settled(self) -> None:
        """Wait for the warm-ups and preloads under way."""
        await self.warmups.settled()

    def _ready_now(self, model_id: str) -> Slot | None:
        """The model's slot if it is ready now: the warm path, without awaiting (the
        keep-alive reaper was started when it loaded, in `SharedLoads.ready`)."""
        slot = self._slots.get(model_id)
        return slot if slot is not None and slot.state == READY else None

    async def estimate(self, model: ModelEntry) -> int:
        """The bytes `model` would be reserved if it loaded now (estimate, corrected)."""
        raw = await self.loader.estimate(model, self.backend(model.backend))
        return self.profile.corrected(model.id, raw)

    async def unload(self, model: ModelEntry) -> None:
        """Free a model's memory once any answer using it has finished."""
        while (slot := self._slots.get(model.id)) is not None and (slot.busy or
                                                                   slot.state != READY):
            await self.changed()
        async with self.loader.gate.hold(REAL):
            slot = self._slots.get(model.id)
            if slot is not None and slot.state == READY and not slot.busy:
                await self.loader.unload_slot(slot, "unloaded")
            elif slot is None:  # not ours, but the backend may hold it (a server's model)
                await self.backend(model.backend).unload(model)

    # -- generation ------------------------------------------------------------------

    async def count_tokens(self, model: ModelEntry, text: str) -> int:
        """Tokens `text` takes for `model`: its own tokenizer where the backend declares one
        (llama.cpp, after loading the model here), else about four characters a token."""
        counter = token_counter_of(self.backend(model.backend))
        if counter is None:
            return estimate_tokens(text)
        await self.ensure_loaded(model)
        return int(await counter.count_tokens(model, text))

    async def stream_chat(self, request: ChatRequest
                          ) -> AsyncIterator[BackendEvent | Admitted]:
        """Stream from the request's model, loading it (and its adapters) first; the model
        counts as busy, so it is never evicted, until the stream ends.

        The first event is `Admitted`, when the request's turn on the model begins (at
        once unless the backend takes turns and the model is busy); ModelBusyError when
        the turn does not come within `models.queue_wait` seconds."""
        slot = await self._lease(request.model, request.loras)
        before, epoch = resident_bytes(), self.ledger.epoch
        try:
            async with turn(slot, self.config.queue_wait) as admitted:
                yield admitted
                async with aclosing(slot.backend.stream_chat(request)) as events:  # type: ignore[type-var]
                    async for event in events:
                        yield event
        finally:
            slot.busy -= 1
            slot.last_used = self.clock.now()
            slot.protected_until = 0.0  # used as warmed or guessed for: plain LRU from now
            if self.loader.observe_growth(slot, before, resident_bytes(), epoch):
                self.warmups.spawn(self.loader.settle(slot))
            self._changes.notify()

    async def prepare(self, model: ModelEntry, loras: tuple[LoraAdapter, ...] = ()) -> None:
        """Make a persona ready to answer: its base loaded, its adapters read and set. This
        is all a persona switch costs; a request does it itself when it starts."""
        slot = await self._lease(model, loras)
        try:
            hosts = adapters_of(slot.backend)
            if hosts is not None:
                await hosts.use_adapters(model, loras)
        finally:
            slot.busy -= 1
            self._changes.notify()

    async def _lease(self, model: ModelEntry, loras: Iterable[LoraAdapter]) -> Slot:
        loras = tuple(loras)
        while True:
            slot = self._ready_now(model.id) or await self._loads.ready(model, REAL)
            missing = [lora for lora in loras if adapter_path(lora) not in slot.adapters]
            if missing:
                await self.loader.load_adapters(slot, missing)
                continue
            if self._slots.is_current(slot):
                slot.busy += 1
                self._touch(slot, real=True)
                return slot

    # -- bookkeeping -----------------------------------------------------------------

    def _touch(self, slot: Slot, real: bool) -> None:
        slot.last_used = self.clock.now()
        if real and slot.preloaded:
            slot.preloaded = False
            self.preloads.hits += 1

    async def changed(self, seconds: float | None = None) -> None:
        """Wait until a model loads, unloads or finishes answering (or `seconds` pass on
        the manager's clock)."""
        await self._changes.wait(seconds)

    async def aclose(self) -> None:
        tasks = [*self.warmups.stop(), *self._loads.stop(), *self.keepalive.stop()]
        self._changes.notify()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.backends.aclose()
        self._slots.clear()
