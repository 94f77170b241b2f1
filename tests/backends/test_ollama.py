"""The Ollama backend against a real HTTP server speaking Ollama's wire format.

The server (tests/support/fake_ollama.py) runs the tiny GGUF with llama.cpp, so
the text, token counts and timings are real; greedy sampling keeps them
repeatable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mirador.backends import ChatRequest, Message, TextPiece, create_backend
from mirador.backends.ollama import OllamaBackend
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.errors import BackendError, BackendUnavailableError, ModelNotFoundError
from mirador.orchestration.events import Done, StageEnd, StageStart, Token
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import BackendsConfig, OllamaConfig, StageConfig, load_settings
from tests.support.fake_ollama import FakeOllama, Record
from tests.support.net import free_port
from tests.support.streams import collect

QUESTION = "What should I focus on today?"
GREEDY = SamplingOptions(temperature=0.0)
TINY = ModelEntry(id="tiny-on-ollama", backend="ollama", name="tiny")


@pytest.fixture(scope="session")
def fake_ollama_server(tiny_gguf: Path) -> Iterator[FakeOllama]:
    with FakeOllama({"tiny": tiny_gguf}) as server:
        yield server


@pytest.fixture
def server(fake_ollama_server: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    fake_ollama_server.reset()
    monkeypatch.setenv("OLLAMA_HOST", fake_ollama_server.url)
    yield fake_ollama_server
    fake_ollama_server.reset()


@pytest.fixture
async def backend(server: FakeOllama) -> AsyncIterator[OllamaBackend]:
    backend = OllamaBackend(load_settings())
    yield backend
    await backend.aclose()


def chat(text: str = QUESTION, options: SamplingOptions = GREEDY,
         model: ModelEntry = TINY) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", text),), options=options)


async def wait_finished(record: Record) -> Record:
    assert await asyncio.to_thread(record.finished.wait, 10), "the generation never ended"
    return record


# -- streaming ---------------------------------------------------------------------


async def test_streams_the_answer_in_pieces_with_counts_and_timings(
        backend: OllamaBackend, server: FakeOllama) -> None:
    pieces, finished = await collect(backend, chat(options=GREEDY.merged(
        SamplingOptions(max_tokens=16))))

    assert len(pieces) > 1
    record = server.records[-1]
    assert finished.completion_tokens == record.eval_count > 1
    assert finished.prompt_tokens > 5  # the templated question, counted by llama.cpp
    assert 0 < finished.timings["eval_seconds"] <= finished.timings["seconds"] < 30
    assert set(finished.timings) == {"seconds", "load_seconds", "prompt_seconds", "eval_seconds"}


async def test_the_pieces_make_the_same_answer_ollama_gives_in_one_piece(
        backend: OllamaBackend, server: FakeOllama) -> None:
    import ollama

    pieces, _ = await collect(backend, chat(options=SamplingOptions(temperature=0, max_tokens=20)))
    client = ollama.AsyncClient(host=server.url)
    whole = await client.chat(model="tiny", messages=[{"role": "user", "content": QUESTION}],
                              options={"temperature": 0, "num_predict": 20})
    await client.close()

    assert "".join(p.text for p in pieces) == whole.message.content


async def test_sampling_options_reach_ollama_under_its_names(
        backend: OllamaBackend, server: FakeOllama) -> None:
    options = SamplingOptions(temperature=0.0, top_p=0.5, top_k=7, repeat_penalty=1.2,
                              max_tokens=5, seed=42, stop=["never-said"])
    _, finished = await collect(backend, chat(options=options))

    sent = server.records[-1].options
    assert {k: sent[k] for k in ("temperature", "top_p", "top_k", "repeat_penalty",
                                 "num_predict", "seed", "stop")} == {
        "temperature": 0.0, "top_p": 0.5, "top_k": 7, "repeat_penalty": 1.2,
        "num_predict": 5, "seed": 42, "stop": ["never-said"]}
    assert (finished.reason, finished.completion_tokens) == ("length", 5)


@pytest.mark.parametrize("limit", [3, 11])
async def test_max_tokens_bounds_the_answer(backend: OllamaBackend, limit: int) -> None:
    pieces, finished = await collect(backend, chat(options=SamplingOptions(
        temperature=0.0, max_tokens=limit)))

    assert (finished.reason, finished.completion_tokens) == ("length", limit)
    assert 1 <= len(pieces) <= limit


async def test_a_stop_string_ends_the_answer_before_it(backend: OllamaBackend) -> None:
    pieces, _ = await collect(backend, chat(options=SamplingOptions(temperature=0,
                                                                    max_tokens=30)))
    full = "".join(p.text for p in pieces)
    stop = full[len(full) // 2:len(full) // 2 + 3]

    cut, finished = await collect(backend, chat(options=SamplingOptions(
        temperature=0, max_tokens=30, stop=[stop])))

    assert "".join(p.text for p in cut) == full[:full.index(stop)]
    assert finished.reason == "stop"


# -- loading -----------------------------------------------------------------------


async def test_load_unload_and_ps_round_trip(backend: OllamaBackend, tiny_gguf: Path,
                                             server: FakeOllama) -> None:
    assert await backend.loaded() == []

    await backend.load(TINY)
    [loaded] = await backend.loaded()
    assert (loaded.model_id, loaded.size_bytes, loaded.backend) == (
        "tiny:latest", (await asyncio.to_thread(tiny_gguf.stat)).st_size, "ollama")
    assert loaded.detail.startswith("until ")
    assert server.records == []  # a preload generates nothing

    await backend.unload(TINY)
    assert await backend.loaded() == []


async def test_keep_alive_from_the_manifest_reaches_ollama(backend: OllamaBackend) -> None:
    brief = TINY.model_copy(update={"keep_alive": 1.0})
    await backend.load(brief)
    assert len(await backend.loaded()) == 1
    await asyncio.sleep(1.2)
    assert await backend.loaded() == []  # Ollama let it go after 1 s


async def test_unloading_a_model_ollama_lacks_is_not_an_error(backend: OllamaBackend) -> None:
    await backend.unload(ModelEntry(id="gone", backend="ollama", name="never-pulled"))


# -- errors --------------------------------------------------------------------------


async def test_a_model_ollama_lacks_says_to_pull_it(backend: OllamaBackend) -> None:
    missing = ModelEntry(id="llama", backend="ollama", name="llama3.2")

    with pytest.raises(ModelNotFoundError, match=r"ollama pull llama3\.2") as streamed:
        await collect(backend, chat(model=missing))
    with pytest.raises(ModelNotFoundError, match=r"ollama pull llama3\.2"):
        await backend.load(missing)
    assert "fix 'name' of model 'llama' in ~/.mirador/manifest.yaml" in str(streamed.value)


async def test_an_unreachable_ollama_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OLLAMA_HOST", host)
    backend = OllamaBackend(load_settings())
    try:
        for attempt in (collect(backend, chat()), backend.load(TINY), backend.loaded()):
            with pytest.raises(BackendUnavailableError) as caught:
                await attempt
            assert f"not reachable at {host}" in str(caught.value)
            assert "ollama serve" in str(caught.value)
            assert "OLLAMA_HOST" in str(caught.value)
    finally:
        await backend.aclose()


async def test_the_config_host_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                         server: FakeOllama) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    settings = load_settings(backends=BackendsConfig(ollama=OllamaConfig(host=server.url)))
    backend = OllamaBackend(settings)
    try:
        await backend.load(TINY)
    finally:
        await backend.aclose()


async def test_a_stream_that_dies_midway_keeps_its_pieces_then_fails(
        backend: OllamaBackend, server: FakeOllama) -> None:
    server.die_after = 3
    pieces: list[str] = []
    with pytest.raises(BackendError, match="broke mid-answer"):
        async for event in backend.stream_chat(chat(options=SamplingOptions(
                temperature=0, max_tokens=40))):
            assert isinstance(event, TextPiece)
            pieces.append(event.text)
    assert len(pieces) == 3


async def test_a_stream_that_ends_without_its_final_object_is_an_error(
        backend: OllamaBackend, server: FakeOllama) -> None:
    server.end_after = 2
    with pytest.raises(BackendError, match="ended the answer from 'tiny' before it was done"):
        await collect(backend, chat(options=SamplingOptions(temperature=0, max_tokens=40)))


async def test_an_error_line_midway_carries_ollamas_words(
        backend: OllamaBackend, server: FakeOllama) -> None:
    server.error_after = 2
    with pytest.raises(BackendError, match="an error was encountered while running the model"):
        await collect(backend, chat(options=SamplingOptions(temperature=0, max_tokens=40)))


# -- cancellation ------------------------------------------------------------------------


async def test_closing_the_stream_stops_ollama_generating(
        backend: OllamaBackend, server: FakeOllama) -> None:
    server.token_delay = 0.05  # all 200 tokens would take 10 s
    stream = backend.stream_chat(chat(options=SamplingOptions(temperature=0, max_tokens=200)))
    for _ in range(3):
        assert isinstance(await anext(stream), TextPiece)
    await stream.aclose()  # type: ignore[attr-defined]

    record = await wait_finished(server.records[-1])
    assert record.disconnected
    assert record.eval_count < 20
    _, finished = await collect(backend, chat(options=SamplingOptions(max_tokens=4)))
    assert finished.completion_tokens == 4  # the connection pool and the model still work


# -- the whole path ----------------------------------------------------------------------


async def test_an_orchestrated_answer_runs_on_ollama(server: FakeOllama) -> None:
    quick = StageConfig(name="quick_response", persona="quick", confidence=0.6,
                        max_tokens=24, temperature=0.0)
    settings = load_settings(stages=[quick])
    assert isinstance(create_backend("ollama", settings), OllamaBackend)

    async with Orchestrator(settings) as orchestrator:
        events = [e async for e in orchestrator.process(
            QUESTION, model="ollama:tiny", stages=["quick_response"])]

    start = next(e for e in events if isinstance(e, StageStart))
    tokens = [e for e in events if isinstance(e, Token)]
    end = next(e for e in events if isinstance(e, StageEnd))
    done = events[-1]
    assert isinstance(done, Done)
    assert (start.model, end.status, done.status) == ("ollama:tiny", "ok", "ok")
    assert done.answer == "".join(t.text for t in tokens).strip() != ""
    record = server.records[-1]
    assert (record.path, record.options["num_predict"], record.options["temperature"],
            record.options["repeat_penalty"]) == ("/api/chat", 24, 0.0, 1.05)
    assert "You are Mirador" in record.prompt and QUESTION in record.prompt
