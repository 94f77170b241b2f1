"""The manager's clock: what time it is, and waiting until a change or a moment.

Keep-alive expiry, eviction order and busy waits read `now()`; the idle loop
sleeps with `wait()`. `MonotonicClock` is the real one. `ManualClock` only moves
when told (`advance`), so tests of eviction and keep-alive step time forward
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from typing import Any, Protocol


class Clock(Protocol):
    """Seconds that only go forward, and a way to wait on them."""

    def now(self) -> float:
        """The time now, in seconds."""
        ...

    async def wait(self, changed: asyncio.Event, seconds: float | None) -> None:
        """Return once `changed` is set or `seconds` have passed (None: no limit)."""
        ...


class MonotonicClock:
    """The real clock: `time.monotonic` and the event loop's timers."""

    # the builtin itself, not a method around it: the warm path reads the clock every time
    now = staticmethod(time.monotonic)

    async def wait(self, changed: asyncio.Event, seconds: float | None) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)


class ManualClock:
    """A clock that moves only by `advance`; waits end when it passes their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every wait whose deadline has come."""
        self._now += seconds
        for deadline, future in self._sleepers:
            if deadline <= self._now and not future.done():
                future.set_result(None)

    async def wait(self, changed: asyncio.Event, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            return
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(changed.wait())}
        if seconds is not None:
            alarm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (self._now + seconds, alarm)
            self._sleepers.append(entry)
            waiters.add(alarm)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            if seconds is not None:
                self._sleepers.remove(entry)


class Changes:
    """Tells waiters that something changed (a model loaded, unloaded or finished answering);
    a wait ends at the next change or when `seconds` pass on the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float | None = None) -> None:
        await self.clock.wait(self._event, seconds)
