"""A tiny Mirador plugin for tests: a backend that answers with the question reversed.

It registers the `reverse` backend (models `reverse:ANY`, settings under
`backends.reverse` in config.yaml), the `letters` embedder and a chain,
through the `mirador` entry point.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from mirador.backends import (
    BackendEvent,
    BackendSpec,
    Capabilities,
    ChatRequest,
    Finished,
    LoadedModel,
    TextPiece,
    backend_config,
)
from mirador.catalog.manifest import ModelEntry
from mirador.plugins import hookimpl
from mirador.settings import Settings

if TYPE_CHECKING:
    import numpy as np


class ReverseConfig(BaseModel):
    """`backends.reverse` in config.yaml."""

    model_config = ConfigDict(extra="forbid")

    marker: str = "reversed:"


class ReverseBackend:
    """Answers with the last message reversed, after the configured marker."""

    name = "reverse"
    capabilities = Capabilities()  # runs elsewhere, measures and counts nothing

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


class LetterEmbedder:
    """Counts the letters a to z: a unit vector of 26 numbers per text."""

    dimension = 26

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for letter in text.lower():
                if "a" <= letter <= "z":
                    row[ord(letter) - ord("a")] += 1
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


@hookimpl
def register_embedders(register: Callable[[str, Callable[[Settings], LetterEmbedder]], None]
                       ) -> None:
    register("letters", lambda settings: LetterEmbedder())


@hookimpl
def register_chains(register: Callable[[dict], None]) -> None:
    register({"id": "quick-again", "steps": ["quick"], "description": "The quick persona, "
              "from a plugin."})
