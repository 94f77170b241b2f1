"""Memory and ratings, reached through what those subsystems expose.

The server does not own memory or learning: memory is the orchestrator's context
source (wired in `mirador.compose`), ratings go through `mirador.ratings.rate_live`. Memory
turned off in the settings is a clear 501.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from mirador.server.errors import FeatureUnavailableError
from mirador.server.runtime import ServerRuntime

Records = list[dict[str, Any]]


class MemoryService(Protocol):
    async def recent(self, namespace: str | None, limit: int) -> Records: ...

    async def search(self, query: str, namespace: str | None, limit: int) -> Records: ...

    async def forget(self, memory_id: str) -> bool: ...

    async def forget_all(self) -> dict[str, int]: ...


class RatingService(Protocol):
    async def rate(self, answer_id: str | None, rating: int,
                   note: str | None) -> dict[str, Any]: ...


def memory_service(runtime: ServerRuntime) -> MemoryService:
    """The orchestrator's memory (its context source), or 501 when memory is off."""
    memory = runtime.orchestrator.context
    if memory is None or not hasattr(memory, "astore"):
        raise FeatureUnavailableError("memory is off on this server (memory.enabled: false in "
                                      "config.yaml); turn it on to keep and search memories")
    return _Memories(memory, runtime)


class _Memories:
    """The memory store's reads, and forgetting through `mirador.privacy` (every file),
    run off the event loop."""

    def __init__(self, memory: Any, runtime: ServerRuntime) -> None:
        self.memory = memory
        self.runtime = runtime

    async def _call(self, work: Callable[[Any], Any]) -> Any:
        """`work(store)` in a worker thread, the store library's errors translated."""
        from mirador.memory.memory import guarded

        store = await self.memory.astore()
        return await asyncio.to_thread(guarded, work, store)

    async def recent(self, namespace: str | None, limit: int) -> Records:
        records = await self._call(lambda store: list(store.records(namespace)))
        newest = sorted(records, key=lambda r: r.timestamp, reverse=True)[:limit]
        return [r.to_json() for r in newest]

    async def search(self, query: str, namespace: str | None, limit: int) -> Records:
        hits = await self._call(lambda store: store.recall(query, time.time(), namespace))
        return [hit.to_json() for hit in hits[:limit]]

    async def forget(self, memory_id: str) -> bool:
        from mirador import privacy

        live = privacy.live_parts(self.runtime.orchestrator)
        gone = await asyncio.to_thread(privacy.forget, self.runtime.settings, [memory_id], live)
        return gone.anything

    async def forget_all(self) -> dict[str, int]:
        from mirador import privacy

        live = privacy.live_parts(self.runtime.orchestrator)
        gone = await asyncio.to_thread(privacy.forget_all, self.runtime.settings, live)
        return gone.to_json()


def rating_service(runtime: ServerRuntime) -> RatingService:
    return _Ratings(runtime)


class _Ratings:
    """Ratings go through the server's own learner and memory (`mirador.ratings.rate_live`),
    once the rated answer's record is written, so its next choice already knows."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime

    async def rate(self, answer_id: str | None, rating: int, note: str | None) -> dict[str, Any]:
        from mirador.ratings import rate_live

        stored = await rate_live(self.runtime.orchestrator, answer_id, rating, note)
        return {"answer_id": stored.answer_id, "rating": stored.rating, "note": stored.note,
                "query_type": stored.query_type, "chain": stored.chain}
