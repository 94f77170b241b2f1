"""Load something in a daemon thread; the first use waits for it and sees its failure.

    embedder = Background(lambda: load_model(path), "mirador-embedder")
    ...
    embedder.result()  # the model, or what loading raised, raised here
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """Runs `load` once in a daemon thread named `name` (at once, or at the first `start`
    or `result`). `result` returns its value or re-raises what it raised, with a note
    saying it was raised while loading in the background."""

    def __init__(self, load: Callable[[], T], name: str, start: bool = True) -> None:
        self._load, self.name = load, name
        self._future: Future[T] = Future()
        self._starting = threading.Lock()
        if start:
            self.start()

    @classmethod
    def of(cls, value: T, name: str) -> Background[T]:
        """One loaded already, with `value`."""
        done = cls(lambda: value, name, start=False)
        done._future.set_running_or_notify_cancel()
        done._future.set_result(value)
        return done

    def start(self) -> None:
        """Begin loading (once); later calls do nothing."""
        with self._starting:
            if self._future.done() or self._future.running():
                return
            self._future.set_running_or_notify_cancel()
        threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def _run(self) -> None:
        try:
            self._future.set_result(self._load())
        except BaseException as exc:  # re-raised in the caller's thread by `result`
            exc.add_note(f"(raised while loading in the background thread {self.name!r})")
            self._future.set_exception(exc)

    @property
    def ready(self) -> bool:
        """True once loading has finished, well or not."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> T:
        """The loaded value, waiting up to `timeout` seconds (None: as long as it takes);
        TimeoutError if it is not ready by then; what loading raised if it failed."""
        self.start()
        return self._future.result(timeout)

    async def aresult(self) -> T:
        """`result`, awaited without blocking the event loop."""
        self.start()
        return await asyncio.wrap_future(self._future)

    def loaded(self) -> T | None:
        """The value if loading finished well, else None (never waits, never raises)."""
        if self._future.done() and self._future.exception() is None:
            return self._future.result()
        return None
