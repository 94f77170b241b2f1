"""Memory fixtures: the real MiniLM embedder, loaded once, and a fresh Chroma store per test."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.memory.memory import Memory, ranking_params
from mirador.memory.ranking import RankingParams
from mirador.memory.records import MemoryRecord
from mirador.memory.store import MemoryStore, open_store
from mirador.settings import Settings

DAY = 86_400.0


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


@pytest.fixture
def store(settings: Settings, minilm: MiniLMEmbedder) -> Iterator[MemoryStore]:
    opened = open_store(settings, minilm, ranking_params(settings))
    yield opened
    opened.close()


def reopen(settings: Settings, minilm: MiniLMEmbedder, *open_stores: MemoryStore
           ) -> MemoryStore:
    """A new client on the same files: what the next process sees. Chroma shares one
    system per path within a process, so the stores given are closed first."""
    for store in open_stores:
        store.close()
    return open_store(settings, minilm, RankingParams())


def memory_with(settings: Settings, minilm: MiniLMEmbedder, **kwargs: object) -> Memory:
    return Memory(settings, store=open_store(settings, minilm, ranking_params(settings)),
                  **kwargs)  # type: ignore[arg-type]


def rec(memory_id: str, query: str, response: str = "Noted.", namespace: str = "default",
        days_ago: float = 1.0, **kwargs: object) -> MemoryRecord:
    return MemoryRecord(id=memory_id, query=query, response=response, namespace=namespace,
                        timestamp=time.time() - days_ago * DAY, **kwargs)  # type: ignore[arg-type]
