"""Embeddings: text to unit vectors, from a local model chosen by name.

Providers register a factory under a name; `load_embedder(settings)` builds
the configured one. Every provider returns float32 rows of unit length, so a
dot product is the cosine similarity.

    minilm                 all-MiniLM-L6-v2 run with numpy + tokenizers (default; loads in ~0.3 s)
    sentence-transformers  the same model through sentence-transformers and torch (~9 s import)
    ollama                 Ollama's embedding API (`ollama pull all-minilm`)

`BackgroundEmbedder` loads a provider in a worker thread as soon as it is
made, so the first stage of an answer never waits for the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mirador import plugins
from mirador.background import Background
from mirador.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from mirador.settings import Settings


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (len(texts), dimension)."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class CountsTokens(Protocol):
    """An embedder that can say how long texts are in its own tokens, and where it cuts."""

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


EmbedderFactory = Callable[["Settings"], Embedder]


class _EmbedderRegistry:
    """Embedder names to factories: the built-ins, then plugins' (their hook runs once)."""

    def __init__(self) -> None:
        self._factories: dict[str, EmbedderFactory] = {}
        self._plugins_loaded = False
        self._lock = threading.Lock()

    def register(self, name: str, factory: EmbedderFactory) -> None:
        self._factories[name] = factory

    def factories(self) -> dict[str, EmbedderFactory]:
        with self._lock:
            if not self._plugins_loaded:
                self._plugins_loaded = True  # first: a failing plugin is reported, not retried
                plugins.call("register_embedders", self.register, lambda name, _factory: name)
        return self._factories


_registry = _EmbedderRegistry()


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `factory` available as `memory.embedder: NAME` (built-ins and plugins alike)."""
    _registry.register(name, factory)


def embedder_names() -> list[str]:
    return sorted(_registry.factories())


def create_embedder(settings: Settings) -> Embedder:
    """Build the embedder the settings name (it may load its model now)."""
    config = settings.config.memory
    factory = _registry.factories().get(config.embedder)
    if factory is None:
        raise ConfigError(f"unknown embedder '{config.embedder}' in memory.embedder "
                          f"(known: {', '.join(embedder_names())}); fix config.yaml")
    return factory(settings)


def load_embedder(settings: Settings, start: bool = True) -> BackgroundEmbedder:
    """The configured embedder, loading in the background (from now, or from first use)."""
    return BackgroundEmbedder(lambda: create_embedder(settings), start=start)


class BackgroundEmbedder:
    """Builds an embedder in a daemon thread at once; the first use waits for it."""

    def __init__(self, build: Callable[[], Embedder], start: bool = True) -> None:
        self._loading = Background(build, "mirador-embedder", start=start)

    def start(self) -> None:
        """Begin loading (once); later calls do nothing."""
        self._loading.start()

    def wait(self) -> Embedder:
        """The loaded embedder (raising whatever loading raised)."""
        return self._loading.result()

    @property
    def ready(self) -> bool:
        return self._loading.ready

    @property
    def dimension(self) -> int:
        return self.wait().dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.wait().embed(texts)


def _minilm(settings: Settings) -> Embedder:
    from mirador.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder.load(settings.config.memory.embedder_model)


def _sentence_transformers(settings: Settings) -> Embedder:
    from mirador.embeddings.st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder.load(settings.config.memory.embedder_model)


def _ollama(settings: Settings) -> Embedder:
    from mirador.embeddings.ollama import OllamaEmbedder

    return OllamaEmbedder(settings.ollama_host, settings.config.memory.embedder_model)


register_embedder("minilm", _minilm)
register_embedder("sentence-transformers", _sentence_transformers)
register_embedder("ollama", _ollama)
