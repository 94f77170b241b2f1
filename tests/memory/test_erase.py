"""Forgotten means erased: after `forget`, no file under the memory directory holds the text,
not Chroma's write-ahead queue or free pages, not the lexical index, not a session journal;
also after a restart, after more writes, and when the process died mid-forget."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.memory import erase, session_log
from mirador.memory.sessions import Turn
from mirador.memory.store import MemoryStore, memory_dir
from mirador.settings import Settings
from tests.memory.conftest import rec, reopen

MARKER = "ZQXMARKER123"


def files_with(directory: Path, marker: str = MARKER) -> list[str]:
    """Every file under `directory` whose bytes contain `marker` (what `grep -ra` finds)."""
    needle = marker.encode()
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and needle in p.read_bytes())


def _fill(store: MemoryStore, start: int, count: int) -> None:
    store.add([rec(f"n{i}", f"Filler note {i} about the garden.") for i in range(start,
                                                                                 start + count)])


def test_forget_leaves_no_trace_in_any_file(settings: Settings, store: MemoryStore,
                                            minilm: MiniLMEmbedder) -> None:
    _fill(store, 0, 20)
    store.add([rec("secret", f"My locker code is {MARKER}, please remember it.",
                   f"I'll remember {MARKER}.", session_id="s1")])
    store.set_rating("secret", 4)  # an update: one more queued copy of the text
    session_log(settings).append("s1", Turn("secret", f"code {MARKER}", "ok", time.time()))
    directory = memory_dir(settings)
    assert "chroma/chroma.sqlite3" in files_with(directory)
    assert "lexical.sqlite3" in files_with(directory)

    # the lexical index keeps the memory's vectors too (what ranking reads): erased with it
    kept = store.lexical.stored("default", ["secret"])["secret"]
    vectors = [kept.search.tobytes(), kept.doc.tobytes()]
    index = directory / "lexical.sqlite3"
    assert all(v in index.read_bytes() for v in vectors)

    assert store.forget(["secret"]) == 1
    session_log(settings).forget(["secret"])
    assert files_with(directory) == []
    assert store.lexical.stored("default", ["secret"]) == {}
    assert not any(v in index.read_bytes() for v in vectors)
    assert store.recall(f"locker code {MARKER}", time.time())[0].record.id != "secret"

    again = reopen(settings, minilm, store)  # a restart, then more writes
    assert files_with(directory) == []
    for batch in range(3):
        _fill(again, 100 + batch * 10, 10)
    assert again.get("secret") is None and again.count() == 50
    assert files_with(directory) == []
    again.close()


def test_forget_all_erases_every_text(settings: Settings, store: MemoryStore,
                                      minilm: MiniLMEmbedder) -> None:
    store.add([rec("a", f"{MARKER} one", namespace="x"), rec("b", f"two {MARKER}",
                                                            namespace="y")])
    assert store.forget_all() == 2
    assert files_with(memory_dir(settings)) == []
    again = reopen(settings, minilm, store)
    _fill(again, 0, 5)
    assert files_with(memory_dir(settings)) == [] and again.count() == 5
    again.close()


_KILLED = textwrap.dedent("""
    import os, signal, sys
    from mirador.embeddings.minilm import MiniLMEmbedder
    from mirador.memory import erase
    from mirador.memory.memory import ranking_params
    from mirador.memory.store import open_store
    from mirador.settings import load_settings

    settings = load_settings()
    store = open_store(settings, MiniLMEmbedder.load(), ranking_params(settings))
    # die where a forget is most exposed: deleted from Chroma, nothing scrubbed yet
    erase.purge_chroma = lambda path: os.kill(os.getpid(), signal.SIGKILL)
    store.forget([sys.argv[1]])
""")


def test_a_forget_killed_midway_is_finished_on_the_next_open(settings: Settings,
                                                             store: MemoryStore,
                                                             minilm: MiniLMEmbedder) -> None:
    _fill(store, 0, 10)
    store.add([rec("secret", f"My PIN is {MARKER}.")])
    store.close()
    child = subprocess.run([sys.executable, "-c", _KILLED, "secret"], timeout=120,
                           cwd=Path(__file__).parents[2])
    assert child.returncode == -9
    directory = memory_dir(settings)
    assert erase.pending(directory) and files_with(directory)  # the text is still there
    again = reopen(settings, minilm)
    assert not erase.pending(directory) and files_with(directory) == []
    assert again.get("secret") is None and again.count() == 10
    assert again.lexical.ids("default") == {f"n{i}" for i in range(10)}
    again.close()
