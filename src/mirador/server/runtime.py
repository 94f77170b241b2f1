"""What lives as long as the server: one orchestrator (so models stay warm) and the gate.

Every answer runs in a task of its own (`AnswerStream`) that feeds a queue the
response reads. When a client goes away, the response is cancelled and cancels
that task exactly once, so the backend's cleanup (stop the llama.cpp worker,
free the model) runs to the end instead of being cut short by the web stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mirador.embeddings import BackgroundEmbedder
from mirador.errors import MiradorError
from mirador.orchestration.events import Ack, Event
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage, Overrides
from mirador.server.limits import StreamGate
from mirador.settings import Settings

_END = object()
Callback = Callable[["AnswerStream"], None]


@dataclass(frozen=True)
class AnswerRequest:
    """What to run: the query and, optionally, fixed stages, one model for all, or a chain."""

    query: Query
    stages: Sequence[str | ModelStage] | None = None
    model: str | None = None
    chain: str | None = None
    overrides: Overrides | None = None  # the client's system prompt and sampling
    remember: bool = True  # False: memory and learning are not told (background tasks)

    def options(self) -> dict[str, Any]:
        return {"stages": self.stages, "model": self.model, "chain": self.chain,
                "overrides": self.overrides, "remember": self.remember}


@dataclass
class ServerRuntime:
    settings: Settings
    orchestrator: Orchestrator
    gate: StreamGate
    started: float = field(default_factory=time.time)
    served: int = 0  # answers started since the server started
    streams: set[AnswerStream] = field(default_factory=set)
    embedder: BackgroundEmbedder | None = None  # the embedding API's, made at first use

    async def answer(self, request: AnswerRequest) -> AnswerStream:
        """Start an answer once a slot is free; its first event (the Ack) is already in hand.

        Errors that stop an answer before it starts (an unknown model or chain) are
        raised here, so they become a proper HTTP error rather than a broken stream.
        """
        return await self.run(lambda: self.orchestrator.process(request.query,
                                                                **request.options()))

    async def run(self, make: Callable[[], AsyncIterator[Event]]) -> AnswerStream:
        """Start the events `make` returns once a slot is free (see `answer`): for answers
        the orchestrator does not plan, such as a client's tool turn (tool_turn.py)."""
        await self.gate.acquire()
        try:
            events = make()
        except BaseException:
            self.gate.release()
            raise
        stream = AnswerStream(events, on_answered=self._release, on_finish=self._finished)
        self.streams.add(stream)
        self.served += 1
        await stream.start()
        return stream

    def _release(self, stream: AnswerStream) -> None:
        if not stream.released:  # once: when the answer is given, or when it stops early
            stream.released = True
            self.gate.release()

    def _finished(self, stream: AnswerStream) -> None:
        self.streams.discard(stream)
        self._release(stream)

    async def aclose(self) -> None:
        for stream in list(self.streams):
            await stream.cancel()
        await self.orchestrator.aclose()


class AnswerStream:
    """One answer, produced by its own task, read as an async iterator of events.

    Reading ends with the `done` event; its slot is freed there, since generation is
    over. Memory and learning (the orchestrator's sinks) are told in a task of the
    orchestrator's own, so cancelling this one never cuts that bookkeeping short.
    """

    def __init__(self, events: AsyncIterator[Event], on_answered: Callback,
                 on_finish: Callback) -> None:
        self._events = events
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._on_answered = on_answered
        self._on_finish = on_finish
        self.released = False
        self._task: asyncio.Task[None] | None = None
        self.ack: Ack | None = None
        self.answered = False  # the Done event is out; memory and learning are being told

    async def start(self) -> None:
        """Run the producer and wait for the first event; raise what stopped it, if anything."""
        self._task = asyncio.create_task(self._pump())
        self._task.add_done_callback(lambda _: self._on_finish(self))
        first = await self._queue.get()
        if isinstance(first, BaseException):
            raise first
        if first is _END:
            raise MiradorError("the answer ended before it began; see the server log")
        self.ack = first

    async def _pump(self) -> None:
        try:
            async for event in self._events:
                self._queue.put_nowait(event)
                if event.type == "done":
                    self.answered = True
                    self._on_answered(self)
        except MiradorError as exc:
            self._queue.put_nowait(exc)
        except Exception as exc:  # a bug: the reader turns it into a JSON error
            self._queue.put_nowait(exc)
        finally:
            self._queue.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[Event]:
        if self.ack is not None:
            yield self.ack
        while (item := await self._queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.type == "done":
                return

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

    async def cancel(self) -> None:
        """Stop the answer (its generation stops within a token) and wait until it has.

        An answer already given is not cut short: it finishes telling memory and learning.
        """
        if self._task is None or self._task.done():
            return
        if not self.answered:
            self._task.cancel()
        await asyncio.wait({self._task})

    def cancel_soon(self) -> None:
        """Stop the answer without waiting: for a caller that is itself being cancelled."""
        if self._task is not None and not self.answered:
            self._task.cancel()
