"""Embeddings through Ollama's and OpenAI's APIs, with their official clients."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import ollama
import openai
import pytest

from mirador.embeddings.minilm import MiniLMEmbedder
from tests.server.conftest import ServerThread

TEXTS = ["The cat sat on the mat.", "A kitten rested on the rug.", "Stock prices fell today."]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


def test_ollama_embed_matches_the_embedder(server: ServerThread, minilm: MiniLMEmbedder) -> None:
    with ollama.Client(host=server.url, timeout=60) as client:
        reply = client.embed(model="all-minilm", input=TEXTS)
    rows = np.array(reply.embeddings)
    assert rows.shape == (3, 384)
    np.testing.assert_allclose(rows, minilm.embed(TEXTS), atol=1e-5)
    similar, unrelated = rows[0] @ rows[1], rows[0] @ rows[2]
    assert similar > unrelated + 0.2, "a real sentence model, not noise"
    assert reply.prompt_eval_count == sum(minilm.count_tokens(TEXTS))


def test_ollama_older_embeddings_call(server: ServerThread) -> None:
    with ollama.Client(host=server.url, timeout=60) as client:
        reply = client.embeddings(model="mirador:embed", prompt=TEXTS[0])
    assert len(reply.embedding) == 384
    assert abs(np.linalg.norm(reply.embedding) - 1.0) < 1e-4


def test_openai_embeddings_float_and_base64(server: ServerThread) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=60) as client:
        floats = client.embeddings.create(model="mirador:embed", input=TEXTS)
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 3
    raw = httpx.post(f"{server.url}/v1/embeddings", timeout=60,
                     json={"model": "mirador:embed", "input": TEXTS[0],
                           "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, floats.data[0].embedding, atol=1e-6)


def test_listings_say_which_models_embed(server: ServerThread) -> None:
    with ollama.Client(host=server.url, timeout=60) as client:
        names = [m.model for m in client.list().models]
        assert "all-minilm" in names and "mirador:quick" in names
        assert "embedding" in (client.show("all-minilm").capabilities or [])
        assert "embedding" not in (client.show("mirador:quick").capabilities or [])
    models = httpx.get(f"{server.url}/v1/models", timeout=60).json()["data"]
    caps = {m["id"]: m["capabilities"] for m in models}
    assert caps["mirador:embed"] == ["embedding"]
    assert caps["mirador:quick"] == ["completion", "tools"]


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/api/embed", {"model": "mirador:quick", "input": "x"}, "does not make embeddings"),
    ("/api/embed", {"model": "nope", "input": "x"}, "not found"),
    ("/api/embed", {"model": "all-minilm", "input": []}, "input is empty"),
    ("/api/embed", {"model": "all-minilm", "input": "word " * 400, "truncate": False},
     "more than the embedding model's 256"),
    ("/api/embed", {"model": "all-minilm", "input": "x", "dimensions": 100}, "dimensions"),
    ("/v1/embeddings", {"model": "mirador:embed", "input": [1, 2, 3]}, "token ids"),
    ("/v1/embeddings", {"model": "mirador:embed", "input": "x", "encoding_format": "int8"},
     "encoding_format"),
])
def test_what_it_cannot_do_is_a_clear_error(server: ServerThread, path: str, body: dict,
                                            says: str) -> None:
    reply = httpx.post(f"{server.url}{path}", json=body, timeout=60)
    assert reply.status_code in (400, 404), reply.text
    assert says in reply.text


def test_long_text_is_cut_by_default(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/api/embed", timeout=60,
                       json={"model": "all-minilm", "input": "word " * 400})
    assert reply.status_code == 200 and reply.json()["prompt_eval_count"] == 256
