"""The time agents run by: the system's, or a manual one that tests move by hand."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall-clock seconds (epoch) and a sleep measured on the same clock."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that stands still until `advance` moves it (from any thread).

    `sleep` returns once the clock has been moved past its end, checking a few times a
    second of real time, so a scheduler on this clock never waits for hours of its time.
    """

    CHECK_EVERY = 0.02  # real seconds between checks while asleep

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time."""
        if seconds < 0:
            raise ValueError("a clock only moves forward; pass seconds >= 0")
        with self._lock:
            self._now += seconds
            return self._now

    async def sleep(self, seconds: float) -> None:
        end = self.now() + seconds
        # Polled, not an asyncio.Event: `advance` may come from another thread (a test
        # driving a server), and the poll is a few cheap checks a second.
        while self.now() < end:  # noqa: ASYNC110
            await asyncio.sleep(self.CHECK_EVERY)
