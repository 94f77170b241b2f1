"""A lock whose waiters are served by priority, so guesses yield to real requests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

REAL = 0  # a request that is waiting for the model
BACKGROUND = 1  # a warm-up or a preload on a guess


class PriorityGate:
    """One holder at a time; when it leaves, the waiter with the lowest priority number
    goes next (first come, first served among equals)."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def busy(self) -> bool:
        return self._held

    def waiting(self, priority: int) -> int:
        """How many live waiters have this priority."""
        return sum(1 for p, _, f in self._waiters if p == priority and not f.done())

    @asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._held and not self._waiters:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the gate was handed over as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._held = False
