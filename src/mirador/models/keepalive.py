"""Keep-alive: how long an idle model stays loaded, and the loop that unloads it after.

A model's keep-alive is what the last request set (Ollama's `keep_alive`), else the
manifest's, else the config's. One reaper task per manager sleeps on the injected
clock (`clock.Changes`) until the next expiry or a change, then unloads what expired;
it ends when no model is loaded and starts again with the next ready model.
"""

from __future__ import annotations

import asyncio

from mirador.catalog.manifest import ModelEntry
from mirador.models.clock import Changes
from mirador.models.gate import BACKGROUND
from mirador.models.loader import Loader
from mirador.models.policy import EvictionPolicy
from mirador.models.slots import SlotTable
from mirador.settings import ModelsConfig


class KeepAlive:
    """Keep-alive durations per model and the reaper that honours them."""

    def __init__(self, config: ModelsConfig, table: SlotTable, policy: EvictionPolicy,
                 loader: Loader, changes: Changes) -> None:
        self.config, self.table, self.policy = config, table, policy
        self.loader, self.changes = loader, changes
        self._set: dict[str, float | None] = {}  # set by a request (Ollama's keep_alive)
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False

    def seconds(self, model: ModelEntry) -> float | None:
        """Seconds `model` stays loaded after its last use (None: until unloaded)."""
        if model.id in self._set:
            return self._set[model.id]
        return model.keep_alive if model.keep_alive is not None else self.config.keep_alive

    def set(self, model: ModelEntry, seconds: float | None) -> None:
        """Keep `model` loaded `seconds` after its last use, until told otherwise."""
        self._set[model.id] = seconds
        self.changes.notify()  # the reaper may be asleep for longer than the new expiry

    def reset(self, model: ModelEntry) -> None:
        """Back to the manifest's or the config's keep-alive."""
        if model.id in self._set:
            del self._set[model.id]
            self.changes.notify()

    def expires_in(self, model: ModelEntry) -> float | None:
        """Seconds until `model` expires if it stays idle (None: never)."""
        slot = self.table.get(model.id)
        return self.policy.expires_in(slot.last_used if slot else None, self.seconds(model))

    async def reap(self) -> list[str]:
        """Unload idle models past their keep-alive; returns their ids."""
        loader, done = self.loader, []
        for slot in self.table.pick(self.policy.expired(loader.held())):
            async with loader.gate.hold(BACKGROUND):
                if self.table.is_current(slot) and not slot.busy:
                    await loader.unload_slot(slot, "expired")
                    done.append(slot.model.id)
        return done

    def ensure_running(self) -> None:
        """Start the reaper unless it runs (called when a model is ready)."""
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap_forever())

    def stop(self) -> list[asyncio.Task[None]]:
        """Stop reaping; returns the reaper task (if any) for the caller to cancel."""
        self._closing = True
        return [self._reaper] if self._reaper is not None else []

    async def _reap_forever(self) -> None:
        # `_closing`, not only cancellation, ends the loop: asyncio.wait_for (3.11) can
        # swallow a cancel that arrives just as the event it waits on is set.
        while self.table and not self._closing:
            await self.changes.wait(self.policy.next_expiry(self.loader.held()))
            await self.reap()

