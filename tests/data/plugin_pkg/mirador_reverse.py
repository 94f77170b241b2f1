"""A tiny Mirador plugin for tests: a backend that answers with the question reversed.

It registers the `reverse` backend (models `reverse:ANY`, settings under
`backends.reverse` in config.yaml) and a chain, through the `mirador` entry point.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel, ConfigDict

from mirador.backends import (
    BackendEvent,
    BackendSpec,
    ChatRequest,
    Finished,
    LoadedModel,
    TextPiece,
    backend_config,
)
from mirador.catalog.manifest import ModelEntry
from mirador.plugins import hookimpl
from mirador.settings import Settings


class ReverseConfig(BaseModel):
    """`backends.reverse` in config.yaml."""

    model_config = ConfigDict(extra="forbid")

    marker: str = "reversed:"


class ReverseBackend:
    """Answers with the last message reversed, after the configured marker."""

    name = "reverse"

    def __init__(self, settings: Settings) -> None:
        config = backend_config("reverse", settings)
        assert isinstance(config, ReverseConfig)
        self.marker = config.marker
        self._loaded: set[str] = set()

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        question = request.messages[-1].content
        yield TextPiece(f"{self.marker} ")
        yield TextPiece(question[::-1])
        yield Finished(completion_tokens=2)

    async def load(self, model: ModelEntry) -> None:
        self._loaded.add(model.id)

    async def unload(self, model: ModelEntry) -> None:
        self._loaded.discard(model.id)

    async def loaded(self) -> list[LoadedModel]:
        return [LoadedModel(model_id=m, backend=self.name) for m in sorted(self._loaded)]

    async def aclose(self) -> None:
        self._loaded.clear()


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(BackendSpec(name="reverse", factory=ReverseBackend, config=ReverseConfig,
                         prefix="reverse", needs=("name",), needs_hint="a 'name'"))


@hookimpl
def register_chains(register: Callable[[dict], None]) -> None:
    register({"id": "quick-again", "steps": ["quick"], "description": "The quick persona, "
              "from a plugin."})
