"""Each model loads once however many ask for it: a request for a model that is
loading waits for that load, one that is unloading waits until it is gone, and
requests at one priority share a single queued load."""

from __future__ import annotations

import asyncio
from functools import partial

from mirador.catalog.manifest import ModelEntry
from mirador.models.clock import Changes
from mirador.models.keepalive import KeepAlive
from mirador.models.loader import Loader
from mirador.models.pool import BackendPool
from mirador.models.slots import LOADING, READY, Slot, SlotTable


class SharedLoads:
    """Hands out loaded slots, starting a load only when none is under way."""

    def __init__(self, table: SlotTable, loader: Loader, keepalive: KeepAlive,
                 backends: BackendPool, changes: Changes) -> None:
        self._slots, self._loader, self._keepalive = table, loader, keepalive
        self._backends, self._changes = backends, changes
        self._queued: dict[tuple[str, int], asyncio.Task[None]] = {}

    async def ready(self, model: ModelEntry, priority: int, guess: bool = False) -> Slot:
        """The model's slot once it is loaded, sharing any load already under way."""
        while True:
            slot = self._slots.get(model.id)
            if slot is not None and slot.state == READY:
                self._keepalive.ensure_running()  # reaps while anything is loaded
                return slot
            if slot is not None and slot.state == LOADING and slot.task is not None:
                await asyncio.shield(slot.task)
                continue
            if slot is not None:  # unloading: wait until it is gone, then load again
                await self._changes.wait(None)
                continue
            key = (model.id, priority)
            task = self._queued.get(key)
            if task is None:
                task = asyncio.ensure_future(self._loader.load(
                    model, self._backends.get(model.backend), priority, guess))
                self._queued[key] = task
                task.add_done_callback(partial(self._forget, key))
            await asyncio.shield(task)

    def _forget(self, key: tuple[str, int], task: asyncio.Task[None]) -> None:
        if self._queued.get(key) is task:
            del self._queued[key]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter got it through the shield

    def stop(self) -> list[asyncio.Task[None]]:
        """The loads under way, for the manager to cancel when it closes."""
        return list(self._queued.values())
