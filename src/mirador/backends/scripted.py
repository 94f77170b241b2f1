"""A scripted backend for injecting faults and timing in tests (yours too).

Queue what the next requests should do: text pieces with delays, a hang, an
error mid-stream. It runs no model; use it only where a real backend cannot
be made to fail on cue.

    backend = ScriptedBackend()
    backend.enqueue(Script(pieces=["Hel", "lo"], fail_after=1))
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mirador.backends.base import (
    BackendEvent,
    Capabilities,
    ChatRequest,
    Finished,
    LoadedModel,
    TextPiece,
    ToolCallRequest,
)
from mirador.catalog.manifest import ModelEntry
from mirador.errors import BackendError


@dataclass(frozen=True)
class Script:
    """What one request does: emit `pieces` `delay` seconds apart, then finish.

    `hang_after`: after that many pieces, wait forever. `fail_after`: after
    that many pieces, raise `error`. `calls`: tool calls the model asks for at the end.
    """

    pieces: tuple[str, ...] | list[str] = ("ok",)
    delay: float = 0.0
    first_delay: float = 0.0
    hang_after: int | None = None
    fail_after: int | None = None
    error: str = "scripted failure"
    calls: tuple[ToolCallRequest, ...] = ()  # tool calls asked for after the pieces


@dataclass
class ScriptedBackend:
    name: str = "scripted"
    capabilities: Capabilities = Capabilities()  # nothing beyond streaming what is queued
    scripts: deque[Script] = field(default_factory=deque)
    requests: list[ChatRequest] = field(default_factory=list)
    closed_streams: int = 0
    _loaded: set[str] = field(default_factory=set)

    def enqueue(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        self.requests.append(request)
        script = self.scripts.popleft() if self.scripts else Script()
        try:
            await asyncio.sleep(script.first_delay)
            for index, piece in enumerate(script.pieces):
                if index == script.hang_after:
                    await asyncio.Event().wait()
                if index == script.fail_after:
                    raise BackendError(script.error)
                if index:
                    await asyncio.sleep(script.delay)
                yield TextPiece(piece)
            if script.hang_after is not None and script.hang_after >= len(script.pieces):
                await asyncio.Event().wait()
            for call in script.calls:
                yield call
            yield Finished(completion_tokens=len(script.pieces))
        finally:
            self.closed_streams += 1

    async def load(self, model: ModelEntry) -> None:
        self._loaded.add(model.id)

    async def unload(self, model: ModelEntry) -> None:
        self._loaded.discard(model.id)

    async def loaded(self) -> list[LoadedModel]:
        return [LoadedModel(model_id=m, backend=self.name) for m in sorted(self._loaded)]

    async def aclose(self) -> None:
        self._loaded.clear()
