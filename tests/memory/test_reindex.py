"""Another embedding model: refused until `reindex` embeds every memory again, whole."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.errors import EmbedderChanged, MissingExtraError
from mirador.memory import reindex
from mirador.memory.memory import Memory, ranking_params
from mirador.memory.store import MemoryStore, collection_name, memory_dir, open_store
from mirador.settings import Settings
from tests.memory.conftest import rec


class OtherModel:
    """Another model of the same dimension: MiniLM's vectors turned (rolled) by one place,
    so only a check of the vectors themselves, not their size, tells the two apart."""

    def __init__(self, minilm: MiniLMEmbedder) -> None:
        self._minilm = minilm
        self.dimension = minilm.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.roll(self._minilm.embed(texts), 1, axis=1)


def _test_plugin() -> ModuleType:
    path = Path(__file__).parents[1] / "data" / "plugin_pkg" / "mirador_reverse.py"
    spec = importlib.util.spec_from_file_location("mirador_reverse", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# a 26-dimensional model: the test plugin's `letters` embedder (letter counts)
Letters = _test_plugin().LetterEmbedder


MEMORIES = [rec("car", "I drive a 2015 Honda Civic.", "Noted.", session_id="s1", rating=5,
                answers={"quick_response": "Noted."}),
            rec("dentist", "My dentist appointment is on March 3.", "Noted."),
            rec("w1", "We deploy on Fridays.", "Noted.", namespace="work")]


def _open(settings: Settings, embedder: object) -> MemoryStore:
    return open_store(settings, embedder, ranking_params(settings))  # type: ignore[arg-type]


@pytest.fixture
def written(settings: Settings, minilm: MiniLMEmbedder) -> Settings:
    store = _open(settings, minilm)
    store.add(MEMORIES)
    store.close()
    return settings


@pytest.mark.parametrize("model", ["same dimension", "other dimension"])
def test_another_model_is_refused_with_what_to_do(written: Settings, minilm: MiniLMEmbedder,
                                                  model: str) -> None:
    other = OtherModel(minilm) if model == "same dimension" else Letters()
    store = _open(written, other)
    try:
        why = "another vector" if model == "same dimension" else "384 dimensions, the model.s 26"
        with pytest.raises(EmbedderChanged, match=f"({why}).*'mirador memory reindex'"):
            store.recall("What car do I drive?", time.time(), "default")
        with pytest.raises(EmbedderChanged, match="namespace 'work'"):
            store.add([rec("n1", "A new namespace's first memory.", namespace="new"),
                       rec("w2", "We test on Thursdays.", namespace="work")])
        assert store.count() == 3 and store.namespaces() == ["default", "work"]  # all or none
    finally:
        store.close()


def test_the_same_model_is_accepted(written: Settings, minilm: MiniLMEmbedder) -> None:
    from mirador.embeddings.st import SentenceTransformerEmbedder

    store = _open(written, SentenceTransformerEmbedder.load())  # MiniLM through torch
    try:
        hits = store.recall("What car do I drive?", time.time(), "default")
        assert hits[0].record.id == "car"
    finally:
        store.close()


def test_reindex_embeds_every_memory_again_and_keeps_it_whole(written: Settings,
                                                               minilm: MiniLMEmbedder) -> None:
    before = _open(written, minilm)
    kept = {r.id: r for r in before.records()}
    before.close()
    store = _open(written, Letters())
    try:
        assert store.reindex() == {"default": 2, "work": 1}
        assert {r.id: r for r in store.records()} == kept  # ratings, sessions, answers
        hits = store.recall("Honda Civic", time.time(), "default")
        assert hits[0].record.id == "car" and len(hits[0].record.response) > 0
        store.add([rec("w2", "We test on Thursdays.", namespace="work")])
        assert not list(memory_dir(written).glob(f"{reindex.PREFIX}*"))
    finally:
        store.close()
    back = _open(written, minilm)  # and back again: refused, then reindexed
    try:
        with pytest.raises(EmbedderChanged):
            back.recall("What car do I drive?", time.time(), "default")
        back.reindex("default")
        assert back.recall("What car do I drive?", time.time(), "default")[0].record.id == "car"
    finally:
        back.close()


def test_a_reindex_cut_short_is_finished_at_the_next_open(written: Settings,
                                                          minilm: MiniLMEmbedder) -> None:
    store = _open(written, minilm)
    kept = list(store.records("default"))
    # what a crash leaves after the journal is written and the collections dropped
    journal = reindex.write_journal(memory_dir(written), "default", kept)
    for kind in ("mem", "doc"):
        store.client.delete_collection(collection_name("default", kind))
    store.close()
    assert journal.exists() and b"Honda Civic" in journal.read_bytes()
    reopened = _open(written, Letters())
    try:
        assert list(reopened.records("default")) == kept
        assert reopened.recall("Honda Civic", time.time(), "default")[0].record.id == "car"
        assert not journal.exists()
    finally:
        reopened.close()


def test_a_journal_never_finished_writing_is_dropped(written: Settings,
                                                     minilm: MiniLMEmbedder) -> None:
    partial = reindex.journal_path(memory_dir(written), "default").with_suffix(".partial")
    partial.write_text('{"namespace": "default"}\n{"id": "car", "me')
    store = _open(written, minilm)
    try:
        assert store.count() == 3 and not partial.exists()
    finally:
        store.close()


class MissingModel:
    """A fault: an embedder whose optional package is not installed."""

    dimension = 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise MissingExtraError("sentence-transformers", "st")


def test_a_refused_write_says_it_was_not_remembered(written: Settings,
                                                    minilm: MiniLMEmbedder) -> None:
    for embedder, error, said in [(OtherModel(minilm), EmbedderChanged, "not remembered: "),
                                  (MissingModel(), MissingExtraError, "this needs")]:
        memory = Memory(written, store=_open(written, embedder))
        memory.remember(rec("new", "I moved to Lisbon."))
        with pytest.raises(error) as raised:  # its own kind, whatever its constructor takes
            memory.close()
        assert str(raised.value).startswith(said)
