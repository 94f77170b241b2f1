"""The OpenAI-compatible backend against a real server: llama-cpp-python's `llama_cpp.server`.

The server runs the default SmolLM2-135M-Instruct GGUF on 127.0.0.1 for the whole session.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mirador.backends import ChatRequest, Message, TextPiece, create_backend
from mirador.backends.openai_compat import OpenAIBackend
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.errors import BackendUnavailableError, ModelNotFoundError
from mirador.orchestration.events import Done, StageStart, Token
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import BackendsConfig, OpenAIConfig, Settings, StageConfig, load_settings
from tests.support.net import free_port, wait_healthy
from tests.support.streams import collect

PROMPT = "Write a long story about a dragon."
SMOLLM = ModelEntry(id="smollm-on-server", backend="openai", name="smollm2-135m")


@pytest.fixture(scope="session")
def llama_server(smollm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` with the default model; yields its base URL (ending in /v1)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_gguf),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
               # One thread: with tests running beside it, llama.cpp's multi-threaded
               # prompt evaluation spins on busy cores and gets ~20x slower.
               "--n_threads", "1", "--n_threads_batch", "1"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_healthy(url, process, log, path="/models", name="llama_cpp.server")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settings_for(base_url: str, **overrides: object) -> Settings:
    """Settings for a server at `base_url`; a hung server fails a test in 30 s, not 300."""
    server = OpenAIConfig(base_url=base_url, timeout=30)
    return load_settings(backends=BackendsConfig(openai=server), **overrides)


@pytest.fixture
async def backend(llama_server: str) -> AsyncIterator[OpenAIBackend]:
    backend = OpenAIBackend(settings_for(llama_server))
    yield backend
    await backend.aclose()


def chat(max_tokens: int, model: ModelEntry = SMOLLM) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", PROMPT),),
                       options=SamplingOptions(temperature=0.0, max_tokens=max_tokens, seed=1))


async def test_streams_the_answer_in_pieces(backend: OpenAIBackend) -> None:
    pieces, finished = await collect(backend, chat(max_tokens=8))

    assert len(pieces) > 1
    assert "".join(p.text for p in pieces).strip()
    # llama_cpp.server ignores stream_options, so there is no usage chunk: pieces are counted.
    assert finished.completion_tokens == len(pieces)
    assert finished.reason == "length"


async def test_max_tokens_bounds_the_answer(backend: OpenAIBackend) -> None:
    short, short_end = await collect(backend, chat(max_tokens=3))
    longer, _ = await collect(backend, chat(max_tokens=12))

    assert (short_end.reason, len(short)) == ("length", 3)
    assert len(longer) > 3
    assert "".join(p.text for p in longer).startswith("".join(p.text for p in short))


async def test_llama_cpp_server_answers_any_model_name_with_its_one_model(
        backend: OpenAIBackend) -> None:
    # llama_cpp.server falls back to its default model for names it does not know,
    # so a misspelt name is not an error there (llama-server and vLLM do refuse it).
    anything = ModelEntry(id="typo", backend="openai", name="no-such-model")
    pieces, _ = await collect(backend, chat(max_tokens=4, model=anything))
    assert pieces


async def test_a_404_names_the_model_and_the_base_url(llama_server: str) -> None:
    wrong = llama_server.removesuffix("/v1")  # a real 404 from the real server
    backend = OpenAIBackend(settings_for(wrong))
    try:
        with pytest.raises(ModelNotFoundError) as caught:
            await collect(backend, chat(max_tokens=4))
    finally:
        await backend.aclose()
    message = str(caught.value)
    assert f"at {wrong} has no model 'smollm2-135m'" in message
    assert "Not Found" in message and "ends in /v1" in message


async def test_an_unreachable_server_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(settings_for(url))
    try:
        for attempt in (collect(backend, chat(max_tokens=4)), backend.load(SMOLLM)):
            with pytest.raises(BackendUnavailableError) as caught:
                await attempt
            assert f"no OpenAI-compatible server answers at {url}" in str(caught.value)
            assert "backends.openai.base_url" in str(caught.value)
    finally:
        await backend.aclose()


async def test_load_checks_the_server_and_nothing_is_reported_loaded(
        backend: OpenAIBackend) -> None:
    await backend.load(SMOLLM)
    await backend.unload(SMOLLM)
    assert await backend.loaded() == []


async def test_an_orchestrated_answer_runs_on_the_server(llama_server: str) -> None:
    quick = StageConfig(name="quick_response", persona="quick", confidence=0.6,
                        max_tokens=10, temperature=0.0, system_prompt="Answer briefly.")
    settings = settings_for(llama_server, stages=[quick])
    assert isinstance(create_backend("openai", settings), OpenAIBackend)

    async with Orchestrator(settings, load_timeout=30) as orchestrator:
        events = [e async for e in orchestrator.process(
            "What should I focus on today?", model="openai:smollm2-135m",
            stages=["quick_response"])]

    start = next(e for e in events if isinstance(e, StageStart))
    tokens = [e for e in events if isinstance(e, Token)]
    done = events[-1]
    assert isinstance(done, Done)
    assert (start.model, done.status) == ("openai:smollm2-135m", "ok")
    assert 0 < len(tokens) <= 10
    assert done.answer == "".join(t.text for t in tokens).strip()


async def test_closing_a_stream_early_leaves_the_server_usable(backend: OpenAIBackend) -> None:
    stream = backend.stream_chat(chat(max_tokens=200))
    for _ in range(2):
        assert isinstance(await anext(stream), TextPiece)
    await stream.aclose()  # type: ignore[attr-defined]

    pieces, finished = await collect(backend, chat(max_tokens=3))
    assert (len(pieces), finished.reason) == (3, "length")
