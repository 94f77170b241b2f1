"""The async loader: loads and unloads models in the slot table, within the budget.

A load reserves the model's corrected estimate, makes room first (the
eviction policy picks idle victims; a real load waits up to `models.busy_wait`
for busy models, a background one gives up at once), then measures what the
load really took. LoRA adapters load onto their base's slot and count with it.
One `PriorityGate` serialises loads and unloads, real requests before guesses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path

from mirador.backends import Backend, LoadedModel, adapters_of, memory_estimator_of
from mirador.catalog.gguf_info import read_gguf_info
from mirador.catalog.manifest import LoraAdapter, ModelEntry
from mirador.catalog.sizes import format_bytes
from mirador.errors import MiradorError, ModelBudgetError, ModelLoadError
from mirador.models.budget import MemoryProfile, measure_load, server_names
from mirador.models.clock import Changes
from mirador.models.gate import BACKGROUND, REAL, PriorityGate
from mirador.models.policy import EvictionPolicy, Held
from mirador.models.slots import READY, UNLOADING, Ledger, Slot, SlotTable
from mirador.settings import Settings

GROWTH_STREAMS = 3  # streams after a load whose growth is charged to the model
MAX_GROWTH = 0.5  # answering may add at most half a model's load size to its reservation

log = logging.getLogger("mirador.models")


class NoRoom(MiradorError):
    """A background load found no room it may take; it gives up quietly."""


class Loader:
    """Loads, unloads and makes room; the manager decides when."""

    def __init__(self, settings: Settings, budget: int, *, table: SlotTable,
                 policy: EvictionPolicy, profile: MemoryProfile, ledger: Ledger,
                 changes: Changes, pinned: Callable[[ModelEntry], bool],
                 keep_alive: Callable[[ModelEntry], float | None]) -> None:
        self.settings = settings
        self.budget = budget
        self.table, self.policy, self.profile = table, policy, profile
        self.ledger, self.changes = ledger, changes
        self.pinned, self.keep_alive = pinned, keep_alive
        self.gate = PriorityGate()

    def held(self) -> list[Held]:
        """What the eviction policy knows about each slot now."""
        return self.table.held(self.pinned, self.keep_alive)

    # -- loading -----------------------------------------------------------------

    async def load(self, model: ModelEntry, backend: Backend, priority: int,
                   guess: bool) -> None:
        """Load `model` into a new slot, making room for it first."""
        async with self.gate.hold(priority):
            if model.id in self.table:
                return  # loaded while this waited for the gate
            raw = await self.estimate(model, backend)
            size = self.profile.corrected(model.id, raw)
            self._check_fits(model, size)
            await self.make_room(size, None, background=priority != REAL)
            slot = Slot(model, backend, reserved=size, task=asyncio.current_task(),
                        last_used=self.policy.clock(), estimate=raw)
            self.table.add(slot)
            self.ledger.epoch += 1  # memory starts to move: streams running now are not measured
            try:
                measured = await measure_load(model, backend, partial(backend.load, model))
            except BaseException:
                self.table.remove(slot)
                self.changes.notify()
                raise
            slot.reserved = self.profile.record(model.id, raw, measured)
            slot.loaded = measured if measured and measured <= slot.reserved else slot.reserved
            slot.watch = GROWTH_STREAMS
            slot.state, slot.preloaded = READY, guess
            self.ledger.loads[model.id] += 1
            self.ledger.record("preload" if guess else "load", slot, self.policy.clock())
            await self._settle_after_load(slot)

    async def _settle_after_load(self, slot: Slot) -> None:
        """Bring the books back within budget if the model took more than estimated, and
        forget models a server dropped on its own to make room (Ollama does)."""
        self.table.note_peak()
        self.changes.notify()
        if not slot.backend.capabilities.in_process:
            self.sync(slot.backend, await self.listing(slot.backend))
        if self.table.used_bytes > self.budget:
            with suppress(NoRoom):  # only busy or pinned models are left: they free room
                await self.make_room(0, slot, background=True)

    async def estimate(self, model: ModelEntry, backend: Backend) -> int:
        """The raw estimate: the manifest's, else the backend's, else the last measurement."""
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

    async def load_adapters(self, slot: Slot, loras: list[LoraAdapter]) -> None:
        """Read `loras` onto `slot`'s base model, making room for each."""
        backend = adapters_of(slot.backend)
        if backend is None:
            raise ModelLoadError(f"the {slot.model.backend} backend cannot apply LoRA adapters "
                                 f"to '{slot.model.id}'; remove 'lora' from the persona or "
                                 "give it a llamacpp base model")
        async with self.gate.hold(REAL):
            for lora in loras:
                if not self.table.is_current(slot):
                    return  # evicted meanwhile: the caller loads it again
                size = (await asyncio.to_thread(read_gguf_info, Path(adapter_path(lora)))
                        ).tensor_bytes
                await self.make_room(size, slot, background=False)
                slot.adapters[adapter_path(lora)] = size
                self.ledger.epoch += 1
                self.table.note_peak()
                self.ledger.record("adapter", slot, self.policy.clock())
                try:
                    await backend.load_adapter(slot.model, lora)
                except BaseException:
                    slot.adapters.pop(adapter_path(lora), None)
                    raise

    def observe_growth(self, slot: Slot, before: int | None, after: int | None,
                       epoch: int) -> bool:
        """After one of a model's first streams, if it ran alone, charge the model what
        resident memory grew by (buffers its load had not touched yet), up to MAX_GROWTH
        of its size. Later streams are not watched: what grows then is not the model's.
        True when the loaded models now exceed the budget (the caller settles)."""
        if (slot.watch <= 0 or before is None or after is None or epoch != self.ledger.epoch
                or not self.table.settled() or not slot.backend.capabilities.in_process):
            return False  # something else may have grown (or shrunk) meanwhile
        slot.watch -= 1
        allowed = int(slot.loaded * (1 + MAX_GROWTH)) - slot.reserved
        added = min(after - before, allowed)
        if added <= 0:
            return False
        slot.reserved += added
        self.profile.remember(slot.model.id, slot.estimate, slot.reserved)
        self.table.note_peak()
        return self.table.used_bytes > self.budget

    # -- making room -------------------------------------------------------------

    async def make_room(self, need: int, keep: Slot | None, background: bool) -> None:
        """Evict idle models until `need` more bytes fit; wait for busy ones (real loads)."""
        deadline = self.policy.clock() + self.settings.config.models.busy_wait
        keep_id = keep.model.id if keep else None
        while True:
            shortfall = self.table.used_bytes + need - self.budget
            if shortfall <= 0:
                return
            victims = self.policy.victims(self.held(), shortfall, keep_id, background)
            if victims is not None:
                for victim in self.table.pick(victims):
                    await self.unload_slot(victim, "evicted")
                continue
            if background:
                raise NoRoom("no idle model may be evicted for a guess")
            remaining = deadline - self.policy.clock()
            if remaining <= 0 or not self.policy.may_free(self.held(), keep_id):
                raise ModelBudgetError(self._no_room_message(need, keep))
            await self.changes.wait(remaining)

    def _no_room_message(self, need: int, keep: Slot | None) -> str:
        free = max(self.budget - self.table.used_bytes, 0)
        return (f"{format_bytes(need)} more is needed but only {format_bytes(free)} of the "
                f"{format_bytes(self.budget)} model budget is free; it is held by "
                f"{self.table.holders(keep, self.pinned)}. Wait for answers to finish, "
                "unpin a model ('mirador models pin ID --off'), or raise models.budget in "
                f"{self.settings.config_path}")

    async def settle(self, slot: Slot) -> None:
        """Evict others, in the background, until the books fit the budget again."""
        async with self.gate.hold(BACKGROUND):
            with suppress(NoRoom):
                await self.make_room(0, slot, background=True)

    async def unload_slot(self, slot: Slot, reason: str) -> None:
        slot.state = UNLOADING
        self.ledger.epoch += 1
        try:
            await slot.backend.unload(slot.model)
        finally:
            self.table.remove(slot)
            self.ledger.evictions[reason] += 1
            self.ledger.record(reason, slot, self.policy.clock())
            if slot.preloaded:
                self.ledger.preloads.wasted += 1
            self.changes.notify()

    # -- what servers hold -------------------------------------------------------

    async def listing(self, backend: Backend) -> list[LoadedModel]:
        try:
            return await backend.loaded()
        except MiradorError as exc:  # a server that is down holds nothing we could list
            log.warning("cannot list what %s holds: %s", backend.name, exc)
            return []

    def sync(self, backend: Backend, listing: list[LoadedModel]) -> None:
        """Drop slots a server no longer holds (it evicted or expired them itself)."""
        listed = {m.model_id for m in listing}
        for slot in [s for s in self.table if s.backend is backend]:
            if slot.state == READY and not slot.busy and slot.reserved \
                    and not (server_names(slot.model) & listed):  # unlisted ones take nothing
                self.table.remove(slot)
                self.ledger.evictions["dropped by server"] += 1
                self.changes.notify()


def adapter_path(lora: LoraAdapter) -> str:
    return str(Path(lora.path).expanduser())
