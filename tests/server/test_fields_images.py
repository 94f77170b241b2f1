"""Images pass through to vision models on Ollama and OpenAI-compatible servers, in each
peer's wire format; every other model refuses them with a 400 (issue 12)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
import yaml

from mirador.backends import ChatRequest, Finished, Message
from mirador.backends.openai_compat import OpenAIBackend, _message, data_url
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.compose import create_orchestrator
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import BackendsConfig, OpenAIConfig, Settings, load_settings
from tests.backends.test_openai_compat import llama_server  # noqa: F401  (a fixture)
from tests.server.conftest import ServerThread
from tests.support.fake_ollama import FakeOllama

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24  # enough of a PNG for the wire
PNG64 = base64.b64encode(PNG).decode()


def with_models(*models: dict[str, Any]) -> Callable[[Settings], Orchestrator]:
    """An orchestrator factory whose manifest also declares `models`."""
    def factory(settings: Settings) -> Orchestrator:
        path = settings.manifest_path
        manifest = yaml.safe_load(path.read_text())
        manifest.setdefault("models", []).extend(models)
        path.write_text(yaml.safe_dump(manifest))
        return create_orchestrator(settings)

    return factory


@pytest.fixture
def fake_ollama(tiny_gguf: Path) -> Iterator[FakeOllama]:
    with FakeOllama({"llava": tiny_gguf}) as peer:
        yield peer


@pytest.fixture
def seeing(make_server: Callable[..., ServerThread], fake_ollama: FakeOllama) -> ServerThread:
    return make_server(
        factory=with_models({"id": "seer", "backend": "ollama", "name": "llava",
                             "tags": ["vision"]},
                            {"id": "blind", "backend": "ollama", "name": "llava"}),
        config={"backends": {"ollama": {"host": fake_ollama.url}}})


def test_ollama_images_reach_an_ollama_vision_model_as_base64(seeing: ServerThread,
                                                              fake_ollama: FakeOllama) -> None:
    with ollama.Client(host=seeing.url, timeout=120) as client:
        reply = client.chat(model="seer", options={"num_predict": 3}, messages=[
            {"role": "user", "content": "What is this?", "images": [PNG]}])
    assert reply.done
    sent = [b for b in fake_ollama.bodies if b.get("messages")][-1]
    assert sent["messages"][-1] == {"role": "user", "content": "What is this?",
                                    "images": [PNG64]}


def test_openai_image_parts_reach_an_ollama_vision_model(seeing: ServerThread,
                                                         fake_ollama: FakeOllama) -> None:
    with openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="x", max_retries=0) as client:
        client.chat.completions.create(model="seer", max_tokens=3, messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "Describe it."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}}]}])
    sent = [b for b in fake_ollama.bodies if b.get("messages")][-1]
    assert sent["messages"][-1]["images"] == [PNG64]


def test_models_that_cannot_see_refuse_and_name_those_that_can(seeing: ServerThread) -> None:
    with ollama.Client(host=seeing.url, timeout=60) as client:
        assert client.show("seer").capabilities == ["completion", "tools", "vision"]
        assert client.show("blind").capabilities == ["completion", "tools"]
        for model in ("blind", "mirador:quick"):
            with pytest.raises(ollama.ResponseError) as refused:
                client.generate(model=model, prompt="What is this?", images=[PNG])
            assert refused.value.status_code == 400
            assert f"model '{model}' cannot see images" in refused.value.error
            assert "these models of this server can: seer" in refused.value.error


def test_an_image_by_web_address_or_not_base64_is_refused(seeing: ServerThread) -> None:
    with (openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="x", max_retries=0) as client,
          pytest.raises(openai.BadRequestError) as refused):
        client.chat.completions.create(model="seer", messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe it."},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "messages[0].content[1].image_url" in str(refused.value)
    assert "data:image" in str(refused.value)
    # the ollama client checks this itself, so as a plain HTTP client would send it:
    reply = httpx.post(f"{seeing.url}/api/chat", timeout=60, json={
        "model": "seer", "messages": [{"role": "user", "content": "x",
                                       "images": ["not base64!"]}]})
    assert reply.status_code == 400 and "messages.0.images" in reply.json()["error"]


def test_openai_wire_form_of_an_image() -> None:
    wire = _message(Message("user", "What is this?", images=(PNG64,)))
    assert wire == {"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}}]}
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 12).decode()
    assert data_url(jpeg).startswith("data:image/jpeg;base64,")
    assert _message(Message("user", "hi")) == {"role": "user", "content": "hi"}


async def test_llama_cpp_server_accepts_the_image_parts_mirador_sends(
        llama_server: str) -> None:  # noqa: F811
    """llama_cpp.server fails on a malformed image part and takes the parts Mirador's OpenAI
    backend sends; its model is not a vision model, so it cannot say more."""
    async with httpx.AsyncClient(timeout=60) as web:
        malformed = await web.post(f"{llama_server}/chat/completions", json={
            "model": "x", "max_tokens": 1, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": 5}]}]})
    assert malformed.status_code >= 400
    settings = load_settings(backends=BackendsConfig(
        openai=OpenAIConfig(base_url=llama_server, timeout=60)))
    backend = OpenAIBackend(settings)
    seer = ModelEntry(id="seer", backend="openai", name="served", tags=["vision"])
    request = ChatRequest(model=seer, options=SamplingOptions(max_tokens=3), messages=(
        Message("user", "Describe it.", images=(PNG64,)),))
    try:
        events = [event async for event in backend.stream_chat(request)]
    finally:
        await backend.aclose()
    assert isinstance(events[-1], Finished)
