"""Warm-ups and guesses: background loads that run behind real requests.

A warm-up loads a model a query is about to need; a preload loads one on a guess
(the predictor's). Both run as tasks this class owns (`settled` waits for them,
`stop` hands them over to be cancelled), and a model warmed or guessed for is
protected for `PROTECT_SECONDS` from other guesses' evictions. A guess never waits
and never evicts a pinned, busy or just-requested model (the loader's `guess`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mirador.catalog.manifest import ModelEntry
from mirador.errors import MiradorError
from mirador.models.clock import Clock
from mirador.models.gate import BACKGROUND
from mirador.models.loader import NoRoom
from mirador.models.slots import READY, Ledger, Slot, SlotTable

log = logging.getLogger("mirador.models")
PROTECT_SECONDS = 30.0  # a model warmed or guessed for a query is not evicted by other guesses
Ready = Callable[..., Awaitable[Slot]]  # (model, priority, guess=False) -> its loaded slot


class Warmups:
    """Starts warm-ups and preloads in the background and keeps their tasks."""

    def __init__(self, ready: Ready, slots: SlotTable, clock: Clock, ledger: Ledger) -> None:
        self._ready, self._slots, self._clock, self._ledger = ready, slots, clock, ledger
        self._tasks: set[asyncio.Task[Any]] = set()

    def warm(self, model: ModelEntry) -> asyncio.Task[None]:
        return self.spawn(self._warm(model))

    def preload(self, model: ModelEntry) -> asyncio.Task[bool]:
        return self.spawn(self._preload(model))

    async def settled(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` as a background task of the manager's (a failure is read here, and
        reported by the request that needs the model)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(_retrieve_exception)
        task.add_done_callback(self._tasks.discard)
        return task

    def stop(self) -> list[asyncio.Task[Any]]:
        """The tasks under way, for the caller to cancel."""
        return list(self._tasks)

    def protect(self, model_id: str) -> None:
        slot = self._slots.get(model_id)
        if slot is not None:
            slot.protected_until = self._clock.now() + PROTECT_SECONDS

    async def _warm(self, model: ModelEntry) -> None:
        await self._ready(model, BACKGROUND)
        self.protect(model.id)

    async def _preload(self, model: ModelEntry) -> bool:
        slot = self._slots.get(model.id)
        if slot is not None and slot.state == READY:
            self.protect(model.id)
            return True
        self._ledger.preloads.started += 1
        try:
            await self._ready(model, BACKGROUND, guess=True)
        except NoRoom:
            self._ledger.preloads.skipped += 1
            return False
        except MiradorError as exc:  # a guess that cannot load costs nothing more
            log.info("preloading %s was skipped: %s (a real request will report it)",
                     model.id, exc)
            return False
        self.protect(model.id)
        return True


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # A failed warm-up is reported by the request that needs the model; reading the
    # exception here keeps asyncio from logging it as never retrieved.
    if not task.cancelled():
        task.exception()
