"""Durability: a write never waits for the disk, yet lands before exit; SIGKILL loses at most
the exchange in flight, and the store opens cleanly afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.settings import Settings
from tests.memory.conftest import rec, reopen

_CHILD = textwrap.dedent("""
    import sys, time
    from mirador.memory.records import MemoryRecord
    from mirador.memory.memory import Memory
    from mirador.settings import load_settings

    memory = Memory(load_settings())
    mode = sys.argv[1]
    for i in range(int(sys.argv[2])):
        memory.remember(MemoryRecord(id=f"x{i:04d}", query=f"Fact number {i}: I like tea.",
                                     response="Noted. " * 20))
        if mode == "kill":
            memory.flush()  # durable now: say so, then write the next one
            print(f"x{i:04d}", flush=True)
    print("queued", flush=True)  # mode 'exit': leave without flushing or closing
""")


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, *args], stdout=subprocess.PIPE,
                            text=True, env=os.environ.copy(), cwd=Path(__file__).parents[2])


def test_sigkill_while_writing_loses_at_most_the_exchange_in_flight(
        settings: Settings, minilm: MiniLMEmbedder) -> None:
    child = _child("kill", "10000")
    assert child.stdout is not None
    durable = []
    deadline = time.monotonic() + 120
    while len(durable) < 25 and time.monotonic() < deadline:
        durable.append(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL and len(durable) == 25
    store = reopen(settings, minilm)
    stored = {r.id for r in store.records()}
    assert set(durable) <= stored  # every acknowledged exchange survived
    assert len(stored - set(durable)) <= 1  # at most the one in flight, if it got that far
    assert store.recall("Fact number 3: I like tea.", time.time())  # the index answers
    store.add([rec("after", "after the crash")])
    assert store.get("after") is not None
    store.close()


def test_queued_exchanges_are_written_before_the_process_exits(
        settings: Settings, minilm: MiniLMEmbedder) -> None:
    child = _child("exit", "3")
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "queued"
    store = reopen(settings, minilm)
    assert sorted(r.id for r in store.records()) == ["x0000", "x0001", "x0002"]
    store.close()
