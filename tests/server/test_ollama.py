"""The Ollama-compatible API, driven by the official `ollama` Python client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import ollama
import pytest

from mirador.backends import ChatRequest, Message, TextPiece
from mirador.backends.ollama import OllamaBackend
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.settings import load_settings
from tests.server.conftest import ServerThread

QUESTION = [{"role": "user", "content": "What is a good breakfast?"}]


@pytest.fixture
async def aclient(server: ServerThread) -> AsyncIterator[ollama.AsyncClient]:
    async with ollama.AsyncClient(host=server.url, timeout=120) as c:
        yield c


def assert_final_stats(final: ollama.ChatResponse | ollama.GenerateResponse) -> None:
    assert final.done and final.done_reason in ("stop", "length")  # length: cut at its limit
    assert final.total_duration and final.total_duration > 0
    assert final.eval_count and final.eval_count > 0
    assert final.eval_duration is not None and final.prompt_eval_count
    assert final.prompt_eval_duration is not None and final.load_duration is not None
    assert final.created_at and final.created_at.endswith("Z")


def test_sync_chat_without_streaming(oclient: ollama.Client) -> None:
    reply = oclient.chat(model="mirador:quick", messages=QUESTION, stream=False)
    assert reply.model == "mirador:quick"
    assert reply.message.role == "assistant" and reply.message.content
    assert "──" not in reply.message.content, "one stage: no stage headers"
    assert_final_stats(reply)


def test_sync_chat_streams_pieces_then_the_stats(oclient: ollama.Client) -> None:
    parts = list(oclient.chat(model="mirador:quick", messages=QUESTION, stream=True))
    pieces, final = parts[:-1], parts[-1]
    assert len(pieces) >= 2 and all(not p.done and p.message.content for p in pieces)
    assert final.message.content == ""
    assert_final_stats(final)


async def test_async_chat_streams_every_stage_of_a_chain(aclient: ollama.AsyncClient) -> None:
    stream = await aclient.chat(model="mirador:duo", messages=QUESTION,
                                             stream=True)
    text = "".join([part.message.content or "" async for part in stream])
    first, second = text.index("── brief · brief ·"), text.index("── brief_final · brief_final ·")
    assert first == 0 and second > first + 20, text


async def test_async_generate_without_streaming_on_one_model(aclient: ollama.AsyncClient) -> None:
    reply = await aclient.generate(model="smollm2-135m", prompt="Say hi.",
                                                system="Answer in French.",
                                                options={"num_predict": 8}, stream=False)
    assert reply.response and "──" not in reply.response
    assert reply.eval_count is not None and 0 < reply.eval_count <= 8
    assert_final_stats(reply)


def test_sync_generate_streams(oclient: ollama.Client) -> None:
    parts = list(oclient.generate(model="tiny:latest", prompt="the plan",
                                  options={"num_predict": 12}, stream=True))
    assert len(parts) >= 3 and parts[-1].done and not parts[0].done
    assert "".join(p.response for p in parts[:-1])


async def test_async_chat_without_streaming_keeps_the_history(aclient: ollama.AsyncClient) -> None:
    history = [{"role": "system", "content": "You are a helpful assistant."},
               {"role": "user", "content": "My name is Ada."},
               {"role": "assistant", "content": "Nice to meet you, Ada."},
               {"role": "user", "content": "What is my name?"}]
    reply = await aclient.chat(model="smollm2-135m", messages=history,
                                            options={"temperature": 0, "num_predict": 16},
                                            stream=False)
    assert "Ada" in reply.message.content


def test_list_shows_chains_beside_manifest_models(oclient: ollama.Client) -> None:
    models = {m.model: m for m in oclient.list().models}
    assert {"mirador:auto", "mirador:quick", "mirador:duo", "mirador:rapid_decision",
            "smollm2-135m", "tiny"} <= set(models)
    assert models["mirador:duo"].details.family == "mirador"
    assert models["smollm2-135m"].size and models["smollm2-135m"].size > 90_000_000
    assert models["mirador:duo"].digest and models["mirador:duo"].modified_at


def test_show_tells_what_a_chain_runs(oclient: ollama.Client) -> None:
    shown = oclient.show("mirador:duo")
    assert shown.modelinfo and shown.modelinfo["mirador.steps"] == ["brief", "brief_final"]
    assert shown.capabilities == ["completion", "tools"]
    assert "Two short stages" in (shown.modelfile or "")


def test_ps_version_and_load_unload(server: ServerThread, oclient: ollama.Client) -> None:
    loaded = oclient.generate(model="tiny", prompt="")
    assert loaded.done and loaded.done_reason == "load"
    assert "tiny" in {m.model for m in oclient.ps().models}
    assert oclient.generate(model="tiny", prompt="", keep_alive=0).done_reason == "unload"
    assert "tiny" not in {m.model for m in oclient.ps().models}
    assert httpx.get(f"{server.url}/api/version").json()["version"].count(".") == 2
    assert httpx.head(server.url).status_code == 200, "the ollama CLI's heartbeat"


def test_unknown_model_is_a_clear_error(oclient: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        oclient.chat(model="llama9", messages=QUESTION)
    assert caught.value.status_code == 404
    assert "model 'llama9' not found" in caught.value.error and "mirador:auto" in caught.value.error


def test_a_plain_curl_body_works_as_with_ollama(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/api/generate", timeout=120,
                       content=b'{"model": "tiny", "prompt": "hi", "stream": false, '
                               b'"options": {"num_predict": 4}}',
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200 and reply.json()["done"] is True


async def test_mirador_own_ollama_backend_talks_to_mirador_serve(server: ServerThread,
                                                                 tmp_path: Path) -> None:
    """Mirador's OllamaBackend against Mirador's own Ollama-compatible API (issue 2)."""
    settings = load_settings(home=tmp_path / "client-home", env={"OLLAMA_HOST": server.url})
    backend = OllamaBackend(settings)
    model = ModelEntry(id="via-serve", backend="ollama", name="smollm2-135m")
    request = ChatRequest(model=model, messages=(Message("user", "Name a colour."),),
                          options=SamplingOptions(max_tokens=6, temperature=0.0))
    pieces, finished = [], None
    async for event in backend.stream_chat(request):
        if isinstance(event, TextPiece):
            pieces.append(event.text)
        else:
            finished = event
    await backend.load(model)
    assert "smollm2-135m" in {m.model_id for m in await backend.loaded()}
    await backend.aclose()
    assert pieces and "".join(pieces).strip()
    assert finished is not None and 0 < finished.completion_tokens <= 6
