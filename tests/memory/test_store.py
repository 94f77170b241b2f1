"""The Chroma store: what is written is found, per namespace, and forgotten means gone."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.memory.records import MAX_FIELD_CHARS, TRUNCATED, cut
from mirador.memory.store import MemoryStore, collection_name
from mirador.settings import Settings
from tests.memory.conftest import rec, reopen


def test_added_memories_are_read_back_whole(store: MemoryStore) -> None:
    original = rec("a1", "I play a 1972 Martin D-28.", "Lovely guitar.", session_id="s1",
                   chain="quick", answers={"quick_response": "Lovely guitar."}, rating=4)
    store.add([original])
    assert store.get("a1") == original
    assert store.count() == 1 and store.namespaces() == ["default"]


def test_namespaces_keep_memories_apart(store: MemoryStore) -> None:
    store.add([rec("w1", "We use Postgres for orders.", namespace="work"),
               rec("p1", "We use Postgres for orders.", namespace="personal tasks/ü")])
    assert store.namespaces() == ["personal tasks/ü", "work"]
    assert [h.record.id for h in store.recall("which database?", time.time(), "work")] == ["w1"]
    assert {h.record.id for h in store.recall("which database?", time.time())} == {"w1", "p1"}


def test_collection_names_are_valid_and_distinct() -> None:
    names = {collection_name(ns, "mem") for ns in ("a", "A", "a b", "a-b", "ü", "x" * 300)}
    assert len(names) == 6
    assert all(3 <= len(n) <= 512 and n[0].isalnum() and n[-1].isalnum() for n in names)


def test_records_are_oldest_first_and_filterable(store: MemoryStore) -> None:
    store.add([rec("new", "second", days_ago=1, session_id="s"),
               rec("old", "first", days_ago=9, session_id="s"),
               rec("other", "elsewhere", session_id="t")])
    assert [r.id for r in store.records()] == ["old", "new", "other"]
    assert [r.id for r in store.session_turns("s")] == ["old", "new"]


def test_rating_is_set_and_cleared(store: MemoryStore) -> None:
    store.add([rec("r1", "rate me")])
    assert store.set_rating("r1", 5) and store.get("r1").rating == 5  # type: ignore[union-attr]
    assert store.set_rating("r1", None) and store.get("r1").rating is None  # type: ignore[union-attr]
    assert not store.set_rating("missing", 3)


def test_forgotten_is_gone_after_a_restart(settings: Settings, store: MemoryStore,
                                           minilm: MiniLMEmbedder) -> None:
    store.add([rec("keep", "My sister is called Ana."), rec("drop", "My PIN is 4321.")])
    assert store.forget(["drop", "never-existed"]) == 1
    again = reopen(settings, minilm, store)
    assert again.get("drop") is None and [r.id for r in again.records()] == ["keep"]
    assert all(h.record.id != "drop" for h in again.recall("What is my PIN?", time.time()))


def test_forget_all_empties_every_namespace(settings: Settings, store: MemoryStore,
                                            minilm: MiniLMEmbedder) -> None:
    store.add([rec("a", "one", namespace="x"), rec("b", "two", namespace="y")])
    assert store.forget_all() == 2
    again = reopen(settings, minilm, store)
    assert again.count() == 0
    again.add([rec("c", "three")])  # the store still works afterwards
    assert again.count() == 1
    again.close()


def test_rewriting_an_id_replaces_it(store: MemoryStore) -> None:
    store.add([rec("x", "first version")])
    store.add([rec("x", "second version")])
    assert store.count() == 1 and store.get("x").query == "second version"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [{"host": "127.0.0.1", "port": 9}])
def test_unreachable_server_says_how_to_start_it(settings: Settings,
                                                 bad: dict[str, object]) -> None:
    from mirador.errors import MemoryStoreError
    from mirador.memory.store import open_client
    from mirador.settings import ChromaServerConfig, load_settings

    served = load_settings(memory=settings.config.memory.model_copy(
        update={"chroma_server": ChromaServerConfig(**bad)}))  # type: ignore[arg-type]
    with pytest.raises(MemoryStoreError, match="chroma run"):
        open_client(served).heartbeat()


def test_the_lexical_index_survives_a_restart_and_mends_itself(settings: Settings,
                                                               store: MemoryStore,
                                                               minilm: MiniLMEmbedder) -> None:
    store.add([rec("c", "Project Juniper launches in July."), rec("d", "Lunch was nice.")])
    again = reopen(settings, minilm, store)
    assert again.lexical.search("default", "Juniper", 5)[0][0] == "c"  # kept on disk
    again.lexical.remove("default", ["c"])  # as if a crash came between Chroma and it
    again.close()
    mended = reopen(settings, minilm)
    assert mended.recall("When is Juniper?", time.time())[0].lexical > 0
    assert mended.lexical.ids("default") == {"c", "d"}
    mended.close()


def test_a_memory_is_bounded_when_written(store: MemoryStore) -> None:
    long = "This is a sentence about my garden. " * 1000
    store.add([rec("big", long, long, answers={"quick": long})])
    got = store.get("big")
    assert got is not None and len(got.query) <= MAX_FIELD_CHARS
    assert got.query.endswith("garden." + TRUNCATED) and got.answers["quick"] == got.query
    assert cut("short") == "short" and len(cut("x" * 20_000)) == MAX_FIELD_CHARS


def test_candidates_hold_what_plain_vector_search_returns(store: MemoryStore) -> None:
    """A memory nearest by its whole exchange is a candidate even when 60 others are nearer
    by the stored search vector: ranking sees plain search's answer (and, ranking by the
    exchange alone, puts it first; by default the person's words weigh 0.4 in ranking)."""
    query = "Which machine do I work on?"
    q = store.embedder.embed([query])[0]
    others = [rec(f"o{i}", f"Unrelated note {i}.", "Noted") for i in range(60)]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((60, q.size)).astype(np.float32)
    noise -= np.outer(noise @ q, q)  # orthogonal to the query: far by the whole exchange
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    store.check_embedder = False  # these vectors are made up, not the model's
    store.add_vectors("default", others, np.tile(q, (60, 1)), noise)
    store.add_vectors("default", [rec("x", "My ThinkPad X1 is slow.")], -q[None, :], q[None, :])
    assert "x" in [c.record.id for c in store.candidates(query, "default")]
    store.params = replace(store.params, match_query_weight=0.0)
    assert store.recall(query, time.time(), "default")[0].record.id == "x"


def test_the_lexical_index_holds_what_chroma_holds_for_ranking(store: MemoryStore) -> None:
    """Ranking reads the person's words, the time and both vectors from the lexical index;
    they must be Chroma's own, or recall would rank differently than from Chroma."""
    store.add([rec("a", "I switched to a Pixel 8.", "Nice phone.", days_ago=3.5),
               rec("b", "Which phone do I use?", "An iPhone 12.", days_ago=40)])
    kept = store.lexical.stored("default", ["b", "a"])
    assert list(kept) == ["a", "b"]  # in the order they were written, as Chroma's gets
    mem: Any = store._collection("default", "mem", create=False)
    doc: Any = store._collection("default", "doc", create=False)
    got = mem.get(ids=["a", "b"], include=["metadatas", "embeddings"])
    docs = doc.get(ids=["a", "b"], include=["embeddings"])
    for i, meta, search in zip(got["ids"], got["metadatas"], got["embeddings"], strict=True):
        whole = store.get(i)
        assert whole is not None and kept[i].record == replace(whole, response="")
        assert kept[i].record.timestamp == meta["ts"]
        assert np.array_equal(kept[i].search, np.asarray(search, dtype=np.float32))
    for i, vector in zip(docs["ids"], docs["embeddings"], strict=True):
        assert np.array_equal(kept[i].doc, np.asarray(vector, dtype=np.float32))


def test_recall_returns_whole_records_even_when_the_index_lags(store: MemoryStore) -> None:
    """A memory another process wrote to Chroma but not yet to the lexical index is still
    ranked (read from Chroma), and every hit comes back whole, answer and all."""
    store.add([rec("c", "Project Juniper launches in July.", "Good luck with it.",
                   session_id="s1", rating=5), rec("d", "Lunch was nice.")])
    store.recall("warm up", time.time())  # the namespace is checked once, then trusted
    store.lexical.remove("default", ["c"])  # as if the other process were between the two
    hits = store.recall("When does Project Juniper launch?", time.time())
    assert hits[0].record == store.get("c")
    assert hits[0].record.response == "Good luck with it." and hits[0].record.rating == 5


def test_a_replace_cut_short_never_leaves_old_ranking_fields(settings: Settings,
                                                             store: MemoryStore,
                                                             minilm: MiniLMEmbedder) -> None:
    """Re-adding an id whose index write never happens (a crash after Chroma's) leaves the
    index short of it, so the next open rebuilds it from Chroma: never the old words."""
    store.add([rec("c", "I use an iPhone 12."), rec("d", "Lunch was nice.")])

    def crash(*_: object) -> None:
        raise KeyboardInterrupt  # as if the process died between Chroma and the index

    store.lexical.add = crash  # type: ignore[method-assign,assignment]
    with pytest.raises(KeyboardInterrupt):
        store.add([rec("c", "I switched to a Pixel 8.")])
    again = reopen(settings, minilm, store)
    again.recall("Which phone do I use?", time.time())  # first use compares and rebuilds
    assert again.lexical.stored("default", ["c"])["c"].record.query == "I switched to a Pixel 8."
    again.close()
