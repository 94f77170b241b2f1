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

    manager = ModelManager(settings, manifest)
    async for event in manager.stream_chat(request):  # loads, evicting if needed
        ...
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing, asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

from mirador.backends import (
    Backend,
    BackendEvent,
    ChatRequest,
    LoadedModel,
    adapters_of,
    check_capabilities,
    create_backend,
    memory_estimator_of,
    token_counter_of,
    turns_of,
)
from mirador.catalog.gguf_info import read_gguf_info
from mirador.catalog.manifest import LoraAdapter, Manifest, ModelEntry
from mirador.catalog.sizes import format_bytes
from mirador.errors import MiradorError, ModelBudgetError, ModelBusyError, ModelLoadError
from mirador.host import resident_bytes
from mirador.models.budget import (
    MemoryProfile,
    measure_load,
    resolve_budget,
    server_names,
)
from mirador.models.clock import Clock, MonotonicClock
from mirador.models.gate import BACKGROUND, REAL, PriorityGate
from mirador.models.pins import PinStore
from mirador.models.policy import EvictionPolicy
from mirador.models.slots import (
    LOADING,
    READY,
    UNLOADING,
    Admitted,
    PreloadCounters,
    Slot,
    SlotStatus,
    SlotTable,
    detail,
)
from mirador.settings import Settings

BackendFactory = Callable[[str, Settings], Backend]
PROTECT_SECONDS = 30.0  # a model warmed or guessed for a query is not evicted by other guesses
MAX_GROWTH = 0.5  # answering may add at most half a model's load size to its reservation
GROWTH_STREAMS = 3  # streams after a load whose growth is charged to the model


class _NoRoom(MiradorError):
    """A background load found no room it may take; it gives up quietly."""


class ModelManager:
    """Loads models lazily under a memory budget, evicts, warms and preloads them."""

    def __init__(self, settings: Settings, manifest: Manifest,
                 backend_factory: BackendFactory = create_backend, *,
                 budget: int | None = None, clock: Clock | None = None,
                 state_dir: Path | None = None) -> None:
        self.settings = settings
        self.manifest = manifest
        self.config = settings.config.models
        self.budget = budget if budget is not None else resolve_budget(self.config)
        state = state_dir if state_dir is not None else settings.models_dir
        self.profile = MemoryProfile(state / "memory.json")
        self.pins = PinStore(state / "pins.json")
        self.loads: Counter[str] = Counter()  # real loads by model id (a test counts these)
        self.evictions: Counter[str] = Counter()  # unloads by reason
        self.preloads = PreloadCounters()
        self.history: deque[tuple[float, str, str, int]] = deque(maxlen=500)
        """(time, what, model id, bytes): load, evicted, expired, unloaded, adapter."""
        self._factory = backend_factory
        self.clock = clock or MonotonicClock()
        self._clock = self.clock.now
        self.policy = EvictionPolicy(self._clock)
        self._backends: dict[str, Backend] = {}
        self._borrowed: set[str] = set()  # given to us by use_backend: the giver closes them
        self._slots = SlotTable()
        self._queued: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._gate = PriorityGate()
        self._changed = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False
        self._keep_alive: dict[str, float | None] = {}  # set by a request (Ollama's keep_alive)
        self._epoch = 0  # counts loads and unloads, so growth is only measured between them

    # -- backends ------------------------------------------------------------------

    def backend(self, name: str) -> Backend:
        """The backend named `name`, created on first use; BackendError if it does not keep
        the capabilities it declares."""
        if name not in self._backends:
            self._backends[name] = check_capabilities(self._factory(name, self.settings))
        return self._backends[name]

    def use_backend(self, name: str, backend: Backend) -> None:
        """Serve `name` with this instance (a plugin's, or a test's); its owner closes it."""
        self._backends[name] = check_capabilities(backend)
        self._borrowed.add(name)

    # -- what is held ----------------------------------------------------------------

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
        now = self._clock()
        return [SlotStatus(s.model.id, s.model.backend, s.state, s.total, s.busy,
                           round(now - s.last_used, 3), self.is_pinned(s.model),
                           s.model.priority, tuple(s.adapters), s.preloaded)
                for s in self._slots]

    async def ps(self) -> list[LoadedModel]:
        """The models held now: the manager's, then any a server holds that it did not load."""
        listings = {}
        for backend in list(self._backends.values()):
            listings[id(backend)] = await self._listing(backend)
            if not backend.capabilities.in_process:
                self._sync(backend, listings[id(backend)])
        rows = [LoadedModel(model_id=s.model_id, size_bytes=s.bytes, backend=s.backend,
                            detail=detail(s)) for s in self.status() if s.state == READY]
        mine = {name for s in self._slots for name in server_names(s.model)}
        rows.extend(LoadedModel(m.model_id, m.size_bytes, m.backend, "not loaded by Mirador")
                    for listing in listings.values() for m in listing if m.model_id not in mine)
        return rows

    # -- loading -------------------------------------------------------------------

    async def ensure_loaded(self, model: ModelEntry) -> None:
        """Load `model` now (evicting, or waiting for room) unless it is loaded already."""
        slot = await self._ready(model, REAL)
        self._touch(slot, real=True)

    def warm(self, model: ModelEntry) -> asyncio.Task[None]:
        """Start loading a model a query will need, in the background and behind real
        requests; a failure surfaces when the model is used."""
        return self._spawn(self._warm(model))

    def preload(self, model: ModelEntry) -> asyncio.Task[bool]:
        """Load a model on a guess, in the background: True if it ended up loaded. A guess
        never waits, never evicts a pinned, busy or just-requested model, and costs little."""
        return self._spawn(self._preload(model))

    async def settled(self) -> None:
        """Wait for the warm-ups and preloads under way."""
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _warm(self, model: ModelEntry) -> None:
        slot = await self._ready(model, BACKGROUND)
        slot.protected_until = self._clock() + PROTECT_SECONDS

    async def _preload(self, model: ModelEntry) -> bool:
        if self.is_loaded(model.id):
            self._protect(model.id)
            return True
        self.preloads.started += 1
        try:
            slot = await self._ready(model, BACKGROUND, guess=True)
        except _NoRoom:
            self.preloads.skipped += 1
            return False
        except MiradorError:
            return False  # a guess that cannot load costs nothing more; real use reports it
        slot.protected_until = self._clock() + PROTECT_SECONDS
        return True

    async def _ready(self, model: ModelEntry, priority: int, guess: bool = False) -> Slot:
        """The model's slot once it is loaded, sharing any load already under way."""
        while True:
            slot = self._slots.get(model.id)
            if slot is not None and slot.state == READY:
                return slot
            if slot is not None and slot.state == LOADING and slot.task is not None:
                await asyncio.shield(slot.task)
                continue
            if slot is not None:  # unloading: wait until it is gone, then load again
                await self._wait_change(None)
                continue
            key = (model.id, priority)
            task = self._queued.get(key)
            if task is None:
                task = asyncio.ensure_future(self._load(model, priority, guess))
                self._queued[key] = task
                task.add_done_callback(partial(self._forget_queued, key))
            await asyncio.shield(task)

    def _forget_queued(self, key: tuple[str, int], task: asyncio.Task[None]) -> None:
        if self._queued.get(key) is task:
            del self._queued[key]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter got it through the shield

    async def _load(self, model: ModelEntry, priority: int, guess: bool) -> None:
        async with self._gate.hold(priority):
            if model.id in self._slots:
                return  # loaded while this waited for the gate
            backend = self.backend(model.backend)
            raw = await self._estimate(model, backend)
            size = self.profile.corrected(model.id, raw)
            self._check_fits(model, size)
            await self._make_room(size, None, background=priority != REAL)
            slot = Slot(model, backend, reserved=size, task=asyncio.current_task(),
                         last_used=self._clock(), estimate=raw)
            self._slots.add(slot)
            self._epoch += 1  # memory starts to move: streams running now are not measured
            try:
                measured = await measure_load(model, backend, partial(backend.load, model))
            except BaseException:
                self._slots.remove(slot)
                self._notify()
                raise
            slot.reserved = self.profile.record(model.id, raw, measured)
            slot.loaded = measured if measured and measured <= slot.reserved else slot.reserved
            slot.watch = GROWTH_STREAMS
            slot.state, slot.preloaded = READY, guess
            self.loads[model.id] += 1
            self._record("preload" if guess else "load", slot)
            await self._settle_after_load(slot)

    async def _settle_after_load(self, slot: Slot) -> None:
        """Bring the books back within budget if the model took more than estimated, and
        forget models a server dropped on its own to make room (Ollama does)."""
        self._slots.note_peak()
        self._notify()
        self._ensure_reaper()
        if not slot.backend.capabilities.in_process:
            self._sync(slot.backend, await self._listing(slot.backend))
        if self.used_bytes > self.budget:
            with suppress(_NoRoom):  # only busy or pinned models are left: they free room
                await self._make_room(0, slot, background=True)

    async def estimate(self, model: ModelEntry) -> int:
        """The bytes `model` would be reserved if it loaded now (estimate, corrected)."""
        raw = await self._estimate(model, self.backend(model.backend))
        return self.profile.corrected(model.id, raw)

    async def _estimate(self, model: ModelEntry, backend: Backend) -> int:
        if model.memory_bytes is not None:
            return model.memory_bytes
        estimator = memory_estimator_of(backend)
        if estimator is not None:
            return await asyncio.to_thread(estimator.estimate_bytes, model)
        return self.profile.measured(model.id) or 0

    def _check_fits(self, model: ModelEntry, size: int) -> None:
        if size > self.budget:
            raise ModelBudgetError(
                f"model '{model.id}' needs about {format_bytes(size)}, more than the whole "
                f"memory budget ({format_bytes(self.budget)}); raise models.budget in "
                f"{self.settings.config_path} or give the persona a smaller model")

    # -- eviction ------------------------------------------------------------------

    async def _make_room(self, need: int, keep: Slot | None, background: bool) -> None:
        """Evict idle models until `need` more bytes fit; wait for busy ones (real loads)."""
        deadline = self._clock() + self.config.busy_wait
        while True:
            shortfall = self.used_bytes + need - self.budget
            if shortfall <= 0:
                return
            victims = self._victims(shortfall, keep, background)
            if victims is not None:
                for victim in victims:
                    await self._unload_slot(victim, "evicted")
                continue
            if background:
                raise _NoRoom("no idle model may be evicted for a guess")
            remaining = deadline - self._clock()
            if remaining <= 0 or not self._may_free(keep):
                raise ModelBudgetError(self._no_room_message(need, keep))
            await self._wait_change(remaining)

    def _victims(self, shortfall: int, keep: Slot | None,
                 background: bool) -> list[Slot] | None:
        """The slots the policy chooses to free `shortfall` bytes; None if it cannot."""
        held = self._slots.held(self.is_pinned, self.keep_alive)
        chosen = self.policy.victims(held, shortfall, keep.model.id if keep else None,
                                     background)
        return None if chosen is None else self._slots.pick(chosen)

    def _may_free(self, keep: Slot | None) -> bool:
        """Whether waiting can help: some model is answering, loading or unloading."""
        held = self._slots.held(self.is_pinned, self.keep_alive)
        return self.policy.may_free(held, keep.model.id if keep else None)

    def _no_room_message(self, need: int, keep: Slot | None) -> str:
        free = max(self.budget - self.used_bytes, 0)
        return (f"{format_bytes(need)} more is needed but only {format_bytes(free)} of the "
                f"{format_bytes(self.budget)} model budget is free; it is held by "
                f"{self._slots.holders(keep, self.is_pinned)}. Wait for answers to finish, "
                "unpin a model ('mirador models pin ID --off'), or raise models.budget in "
                f"{self.settings.config_path}")

    async def _unload_slot(self, slot: Slot, reason: str) -> None:
        slot.state = UNLOADING
        self._epoch += 1
        try:
            await slot.backend.unload(slot.model)
        finally:
            self._slots.remove(slot)
            self.evictions[reason] += 1
            self._record(reason, slot)
            if slot.preloaded:
                self.preloads.wasted += 1
            self._notify()

    async def unload(self, model: ModelEntry) -> None:
        """Free a model's memory once any answer using it has finished."""
        while (slot := self._slots.get(model.id)) is not None and (slot.busy or
                                                                   slot.state != READY):
            await self._wait_change(None)
        async with self._gate.hold(REAL):
            slot = self._slots.get(model.id)
            if slot is not None and slot.state == READY and not slot.busy:
                await self._unload_slot(slot, "unloaded")
            elif slot is None:  # not ours, but the backend may hold it (a server's model)
                await self.backend(model.backend).unload(model)

    # -- keep-alive ------------------------------------------------------------------

    def keep_alive(self, model: ModelEntry) -> float | None:
        """Seconds `model` stays loaded after its last use (None: until unloaded): what the
        last request set, else the manifest's, else the config's."""
        if model.id in self._keep_alive:
            return self._keep_alive[model.id]
        return model.keep_alive if model.keep_alive is not None else self.config.keep_alive

    def set_keep_alive(self, model: ModelEntry, seconds: float | None) -> None:
        """Keep `model` loaded `seconds` after its last use (None: until unloaded), as a
        request's keep_alive asks, until another request says otherwise."""
        self._keep_alive[model.id] = seconds
        self._notify()  # the reaper may be asleep for longer than the new expiry

    def reset_keep_alive(self, model: ModelEntry) -> None:
        """Back to the manifest's or the config's keep-alive."""
        if model.id in self._keep_alive:
            del self._keep_alive[model.id]
            self._notify()

    def expires_in(self, model: ModelEntry) -> float | None:
        """Seconds until `model` expires if it stays idle (None: never)."""
        slot = self._slots.get(model.id)
        return self.policy.expires_in(slot.last_used if slot else None, self.keep_alive(model))

    async def reap(self) -> list[str]:
        """Unload idle models past their keep-alive; returns their ids."""
        chosen = self.policy.expired(self._slots.held(self.is_pinned, self.keep_alive))
        expired = self._slots.pick(chosen)
        done = []
        for slot in expired:
            async with self._gate.hold(BACKGROUND):
                if self._slots.is_current(slot) and not slot.busy:
                    await self._unload_slot(slot, "expired")
                    done.append(slot.model.id)
        return done

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap_forever())

    async def _reap_forever(self) -> None:
        # `_closing`, not only cancellation, ends the loop: asyncio.wait_for (3.11) can
        # swallow a cancel that arrives just as the event it waits on is set.
        while self._slots and not self._closing:
            await self._wait_change(self.policy.next_expiry(
                self._slots.held(self.is_pinned, self.keep_alive)))
            await self.reap()

    # -- generation ------------------------------------------------------------------

    async def count_tokens(self, model: ModelEntry, text: str) -> int:
        """Tokens `text` takes for `model`: its own tokenizer where the backend has one
        (llama.cpp, after loading the model here), else about four characters a token."""
        counter = token_counter_of(self.backend(model.backend))
        if counter is None:
            return max(1, (len(text) + 3) // 4) if text else 0
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
        before, epoch = resident_bytes(), self._epoch
        try:
            async with self._turn(slot) as admitted:
                yield admitted
                async with aclosing(slot.backend.stream_chat(request)) as events:  # type: ignore[type-var]
                    async for event in events:
                        yield event
        finally:
            slot.busy -= 1
            slot.last_used = self._clock()
            slot.protected_until = 0.0  # used as warmed or guessed for: plain LRU from now
            self._observe_growth(slot, before, epoch)
            self._notify()

    @asynccontextmanager
    async def _turn(self, slot: Slot) -> AsyncIterator[Admitted]:
        """Wait, first in first out, for a turn on `slot`'s model; hold it while inside."""
        if slot.turns is None:
            takes_turns = turns_of(slot.backend)
            if takes_turns is None:
                yield Admitted()
                return
            slot.turns = asyncio.Semaphore(max(1, takes_turns.sequences(slot.model)))
        turns, ahead, asked = slot.turns, slot.busy - 1, time.monotonic()
        slot.waiting += 1
        try:
            async with asyncio.timeout(self.config.queue_wait):
                await turns.acquire()
        except TimeoutError:
            raise ModelBusyError(
                f"waited {self.config.queue_wait:.0f} s for a turn on model '{slot.model.id}', "
                f"busy with {ahead} other request(s); retry later, or raise models.queue_wait "
                "in config.yaml") from None
        finally:
            slot.waiting -= 1
        try:
            yield Admitted(waited=time.monotonic() - asked, ahead=ahead)
        finally:
            turns.release()

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
            self._notify()

    async def _lease(self, model: ModelEntry, loras: Iterable[LoraAdapter]) -> Slot:
        loras = tuple(loras)
        while True:
            slot = await self._ready(model, REAL)
            missing = [lora for lora in loras if _path(lora) not in slot.adapters]
            if missing:
                await self._load_adapters(slot, missing)
                continue
            if self._slots.is_current(slot):
                slot.busy += 1
                self._touch(slot, real=True)
                return slot

    async def _load_adapters(self, slot: Slot, loras: list[LoraAdapter]) -> None:
        backend = adapters_of(slot.backend)
        if backend is None:
            raise ModelLoadError(f"the {slot.model.backend} backend cannot apply LoRA adapters "
                                 f"to '{slot.model.id}'; remove 'lora' from the persona or "
                                 "give it a llamacpp base model")
        async with self._gate.hold(REAL):
            for lora in loras:
                if not self._slots.is_current(slot):
                    return  # evicted meanwhile: the caller loads it again
                size = (await asyncio.to_thread(read_gguf_info, Path(_path(lora)))).tensor_bytes
                await self._make_room(size, slot, background=False)
                slot.adapters[_path(lora)] = size
                self._epoch += 1
                self._slots.note_peak()
                self._record("adapter", slot)
                try:
                    await backend.load_adapter(slot.model, lora)
                except BaseException:
                    slot.adapters.pop(_path(lora), None)
                    raise

    # -- bookkeeping -----------------------------------------------------------------

    def _touch(self, slot: Slot, real: bool) -> None:
        slot.last_used = self._clock()
        if real and slot.preloaded:
            slot.preloaded = False
            self.preloads.hits += 1

    def _record(self, what: str, slot: Slot) -> None:
        self._epoch += 1
        self.history.append((self._clock(), what, slot.model.id, slot.total))

    def _observe_growth(self, slot: Slot, before: int | None, epoch: int) -> None:
        """After one of a model's first streams, if it ran alone, charge the model what
        resident memory grew by (buffers its load had not touched yet), up to MAX_GROWTH
        of its size. Later streams are not watched: what grows then is not the model's."""
        after = resident_bytes()
        if (slot.watch <= 0 or before is None or after is None or epoch != self._epoch
                or not self._slots.settled() or not slot.backend.capabilities.in_process):
            return  # something else may have grown (or shrunk) meanwhile
        slot.watch -= 1
        allowed = int(slot.loaded * (1 + MAX_GROWTH)) - slot.reserved
        added = min(after - before, allowed)
        if added > 0:
            slot.reserved += added
            self.profile.remember(slot.model.id, slot.estimate, slot.reserved)
            self._slots.note_peak()
            if self.used_bytes > self.budget:
                self._spawn(self._settle(slot))

    async def _settle(self, slot: Slot) -> None:
        async with self._gate.hold(BACKGROUND):
            with suppress(_NoRoom):
                await self._make_room(0, slot, background=True)

    def _protect(self, model_id: str) -> None:
        slot = self._slots.get(model_id)
        if slot is not None:
            slot.protected_until = self._clock() + PROTECT_SECONDS

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, seconds: float | None = None) -> None:
        """Wait until a model loads, unloads or finishes answering (or `seconds` pass on
        the manager's clock)."""
        await self.clock.wait(self._changed, seconds)

    async def _wait_change(self, seconds: float | None) -> None:
        await self.changed(seconds)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(_retrieve_exception)
        task.add_done_callback(self._background.discard)
        return task

    async def _listing(self, backend: Backend) -> list[LoadedModel]:
        try:
            return await backend.loaded()
        except MiradorError:
            return []  # a server that is down holds nothing we could list

    def _sync(self, backend: Backend, listing: list[LoadedModel]) -> None:
        """Drop slots a server no longer holds (it evicted or expired them itself)."""
        listed = {m.model_id for m in listing}
        for slot in [s for s in self._slots if s.backend is backend]:
            if slot.state == READY and not slot.busy and slot.reserved \
                    and not (server_names(slot.model) & listed):  # unlisted ones take nothing
                self._slots.remove(slot)
                self.evictions["dropped by server"] += 1
                self._notify()

    async def aclose(self) -> None:
        self._closing = True
        self._notify()
        tasks = [*self._background, *self._queued.values()]
        if self._reaper is not None:
            tasks.append(self._reaper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name, backend in self._backends.items():
            if name not in self._borrowed:
                await backend.aclose()
        self._backends.clear()
        self._slots.clear()


def _path(lora: LoraAdapter) -> str:
    return str(Path(lora.path).expanduser())


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # A failed warm-up is reported by the request that needs the model; reading the
    # exception here keeps asyncio from logging it as never retrieved.
    if not task.cancelled():
        task.exception()
