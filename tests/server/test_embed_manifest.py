"""Embedding models from the manifest (`embedding: true`), through every embeddings API.

The shared server declares SmolLM2's GGUF as `smol-embed`, an embedding model that
llama.cpp loads with `embedding=True`. It is reached with the official clients, and
with Mirador's own Ollama and OpenAI backends pointed at this server (a real peer
speaking both wire formats), so those backends' `embed` runs over real HTTP too."""

from __future__ import annotations

import httpx
import numpy as np
import ollama
import openai
import pytest
from pydantic import ValidationError

from mirador.backends.ollama import OllamaBackend
from mirador.backends.openai_compat import OpenAIBackend
from mirador.catalog.manifest import Manifest, ModelEntry
from mirador.settings import BackendsConfig, OpenAIConfig, load_settings
from tests.server.conftest import EMBEDDER, ServerThread

TEXTS = ["A cat sleeps on the sofa.", "Interest rates rose again this year."]


def test_ollama_embed_gives_unit_vectors_per_text(oclient: ollama.Client) -> None:
    reply = oclient.embed(model=EMBEDDER, input=TEXTS)
    rows = np.asarray(reply.embeddings)
    assert rows.shape == (2, 576)  # SmolLM2-135M's hidden size
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)
    assert float(rows[0] @ rows[1]) < 0.999, "different texts, different vectors"
    again = np.asarray(oclient.embed(model=EMBEDDER, input=TEXTS[0]).embeddings[0])
    assert np.allclose(again, rows[0], atol=1e-4), "one text alone embeds as in a batch"
    assert reply.model == EMBEDDER and (reply.prompt_eval_count or 0) > 5


def test_openai_and_the_older_ollama_call_agree(oclient: ollama.Client,
                                                oai: openai.OpenAI) -> None:
    ours = np.asarray(oclient.embed(model=EMBEDDER, input=TEXTS).embeddings)
    reply = oai.embeddings.create(model=EMBEDDER, input=TEXTS)
    assert np.allclose([d.embedding for d in reply.data], ours, atol=1e-4)
    assert reply.usage.prompt_tokens > 5
    old = oclient.embeddings(model=EMBEDDER, prompt=TEXTS[1])
    assert np.allclose(old.embedding, ours[1], atol=1e-4)


def test_listings_say_which_models_embed(oclient: ollama.Client, oai: openai.OpenAI) -> None:
    assert list(oclient.show(EMBEDDER).capabilities or []) == ["embedding"]
    assert "completion" in (oclient.show("mirador:quick").capabilities or [])
    assert EMBEDDER in [m.model for m in oclient.list().models]
    listed = {m.id: m.model_extra for m in oai.models.list()}
    assert (listed[EMBEDDER] or {})["capabilities"] == ["embedding"]
    assert (listed["tiny"] or {})["capabilities"] == ["completion", "tools"]


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_chat_with_an_embedding_model_is_a_400(server: ServerThread, path: str) -> None:
    reply = httpx.post(f"{server.url}{path}", timeout=60, json={
        "model": EMBEDDER, "stream": False, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 400, reply.text
    assert "embedding model" in reply.text and "/api/embed" in reply.text


def test_native_ask_on_an_embedding_model_is_the_same_400(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/mirador/ask", timeout=60,
                       json={"query": "Hi", "model": EMBEDDER, "stream": False})
    assert reply.status_code == 400, reply.text
    assert "embedding model" in reply.text and "/api/embed" in reply.text


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/mirador/ask"])
def test_an_embedding_model_is_refused_before_anything_loads(server: ServerThread,
                                                             path: str) -> None:
    """A prompt long enough to be counted (which loads the model) and an empty Ollama chat
    (which loads it on purpose) are refused first: the embedder stays unloaded."""
    httpx.post(f"{server.url}/mirador/models/{EMBEDDER}/unload", timeout=60).raise_for_status()
    long = "word " * 800
    bodies = [{"model": EMBEDDER, "stream": False,
               "messages": [{"role": "user", "content": long}]}]
    if path == "/api/chat":
        bodies.append({"model": EMBEDDER, "messages": []})
    if path == "/mirador/ask":
        bodies = [{"query": long, "model": EMBEDDER, "stream": False}]
    for body in bodies:
        reply = httpx.post(f"{server.url}{path}", timeout=60, json=body)
        assert reply.status_code == 400 and "embedding model" in reply.text, reply.text
    loaded = httpx.get(f"{server.url}/mirador/ps", timeout=10).json()["models"]
    assert EMBEDDER not in [m["id"] for m in loaded]


def test_embeddings_from_a_chat_model_name_the_models_that_embed(
        oclient: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        oclient.embed(model="tiny", input="Hi")
    assert caught.value.status_code == 400
    assert EMBEDDER in caught.value.error and "mirador:embed" in caught.value.error


def test_a_persona_on_an_embedding_model_is_refused() -> None:
    embedder = ModelEntry(id="e", path="e.gguf", embedding=True)
    with pytest.raises(ValidationError, match="embedding model"):
        Manifest(models=[embedder], personas=[{"id": "p", "model": "e"}])  # type: ignore[list-item]


async def test_the_ollama_backend_embeds_over_the_wire(
        server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    backend = OllamaBackend(load_settings())
    model = ModelEntry(id="remote", backend="ollama", name=EMBEDDER, embedding=True)
    try:
        got = await backend.embed(model, TEXTS)
    finally:
        await backend.aclose()
    async with httpx.AsyncClient(timeout=60) as http:
        direct = (await http.post(f"{server.url}/api/embed",
                                  json={"model": EMBEDDER, "input": TEXTS})).json()["embeddings"]
    assert np.allclose(got.vectors, direct, atol=1e-4) and got.tokens > 5


async def test_the_openai_backend_embeds_over_the_wire(server: ServerThread) -> None:
    config = BackendsConfig(openai=OpenAIConfig(base_url=f"{server.url}/v1", timeout=60))
    backend = OpenAIBackend(load_settings(backends=config))
    model = ModelEntry(id="remote", backend="openai", name=EMBEDDER, embedding=True)
    try:
        got = await backend.embed(model, TEXTS)
    finally:
        await backend.aclose()
    assert len(got.vectors) == 2 and len(got.vectors[0]) == 576 and got.tokens > 5
