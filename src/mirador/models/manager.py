"""The model manager: one place that owns backends and decides what is loaded.

Everything that runs a model goes through here, so loading, warming and
(later) budgets and eviction are decided once, above the backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from mirador.backends import Backend, BackendEvent, ChatRequest, LoadedModel, create_backend
from mirador.models.manifest import Manifest, ModelEntry
from mirador.settings import Settings

BackendFactory = Callable[[str, Settings], Backend]


class ModelManager:
    """Creates backends on first use, loads models lazily and warms them ahead of need."""

    def __init__(self, settings: Settings, manifest: Manifest,
                 backend_factory: BackendFactory = create_backend) -> None:
        self.settings = settings
        self.manifest = manifest
        self._factory = backend_factory
        self._backends: dict[str, Backend] = {}
        self._borrowed: set[str] = set()  # given to us by use_backend: the giver closes them
        self._warming: dict[str, asyncio.Task[None]] = {}

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = self._factory(name, self.settings)
        return self._backends[name]

    def use_backend(self, name: str, backend: Backend) -> None:
        """Serve `name` with this instance (a plugin's, or a test's); its owner closes it."""
        self._backends[name] = backend
        self._borrowed.add(name)

    async def ensure_loaded(self, model: ModelEntry) -> None:
        task = self._warming.get(model.id)
        if task is not None and not task.done():
            await asyncio.shield(task)
            return
        await self.backend(model.backend).load(model)

    def warm(self, model: ModelEntry) -> asyncio.Task[None]:
        """Start loading `model` in the background; a failure surfaces when it is used."""
        task = self._warming.get(model.id)
        if task is None or task.done():
            task = asyncio.ensure_future(self.backend(model.backend).load(model))
            task.add_done_callback(_retrieve_exception)
            self._warming[model.id] = task
        return task

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        return self.backend(request.model.backend).stream_chat(request)

    async def unload(self, model: ModelEntry) -> None:
        await self.backend(model.backend).unload(model)

    async def ps(self) -> list[LoadedModel]:
        loaded: list[LoadedModel] = []
        for backend in self._backends.values():
            loaded.extend(await backend.loaded())
        return loaded

    async def aclose(self) -> None:
        for task in self._warming.values():
            task.cancel()
        for name, backend in self._backends.items():
            if name not in self._borrowed:
                await backend.aclose()
        self._backends.clear()


def _retrieve_exception(task: asyncio.Task[None]) -> None:
    # A failed warm-up is reported by the request that needs the model; reading the
    # exception here keeps asyncio from logging it as never retrieved.
    if not task.cancelled():
        task.exception()
