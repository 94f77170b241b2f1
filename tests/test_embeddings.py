"""The embedders: the numpy MiniLM equals sentence-transformers, and providers plug in by name."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from mirador.embeddings import (
    BackgroundEmbedder,
    Embedder,
    create_embedder,
    embedder_names,
    load_embedder,
    register_embedder,
)
from mirador.embeddings.minilm import MiniLMEmbedder, packaged_model_dir
from mirador.embeddings.ollama import OllamaEmbedder
from mirador.errors import BackendUnavailableError, ConfigError, EmbedderError
from mirador.settings import Settings, load_settings

SENTENCES = [
    "How far should my longest run be before race day?",
    "I'm training for a half marathon in April; my long run is 14 km now.",
    "Our startup's runway is 9 months; we spend about $120k a month.",
    "Prepare clothes and lunch the night before; practice the route.",
    "x",
    "Ünïcode, emoji 🎉 and punctuation!!! — still one vector.",
    " ".join(["a very long sentence that goes past the truncation limit"] * 60),
]


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


def test_minilm_rows_are_unit_float32(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_ranks_by_meaning(minilm: MiniLMEmbedder) -> None:
    query, related, unrelated = minilm.embed(
        ["How far should my longest run be?", "My long run is 14 km", "We use Postgres"])
    assert query @ related > query @ unrelated + 0.2


def test_minilm_batching_does_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    together = minilm.embed(SENTENCES)
    alone = np.vstack([minilm.embed([s]) for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_minilm_equals_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    pytest.importorskip("sentence_transformers", reason="needs the 'st' extra")
    from mirador.embeddings.st import SentenceTransformerEmbedder

    reference = SentenceTransformerEmbedder.load()
    assert reference.dimension == minilm.dimension
    cosines = (minilm.embed(SENTENCES) * reference.embed(SENTENCES)).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_minilm_runs_numpy_blas_on_one_thread(minilm: MiniLMEmbedder) -> None:
    """Two OpenBLAS threads beside llama.cpp's made a query's embedding 10x slower."""
    import numpy
    from threadpoolctl import threadpool_info

    numpy_dir = str(Path(numpy.__file__).parent.parent)  # numpy.libs sits beside numpy
    blas = [info for info in threadpool_info() if info["user_api"] == "blas"
            and info["filepath"].startswith(numpy_dir) and "numpy" in info["filepath"]]
    assert blas and all(info["num_threads"] == 1 for info in blas), blas


def test_missing_model_folder_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmbedderError, match="model.safetensors"):
        MiniLMEmbedder.load(tmp_path)


def test_packaged_model_is_found() -> None:
    assert (packaged_model_dir() / "model.safetensors").is_file()


def test_registry_builds_the_configured_embedder(settings: Settings) -> None:
    assert {"minilm", "sentence-transformers", "ollama"} <= set(embedder_names())
    assert isinstance(create_embedder(settings), MiniLMEmbedder)
    unknown = load_settings(memory=settings.config.memory.model_copy(update={"embedder": "nope"}))
    with pytest.raises(ConfigError, match="unknown embedder 'nope'"):
        create_embedder(unknown)


class _Constant:
    dimension = 2

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return np.tile(np.array([[0.6, 0.8]], dtype=np.float32), (len(texts), 1))


def test_plugins_register_like_builtins(settings: Settings) -> None:
    register_embedder("constant-test", lambda _settings: _Constant())
    chosen = load_settings(memory=settings.config.memory.model_copy(
        update={"embedder": "constant-test"}))
    embedder = load_embedder(chosen)
    assert isinstance(embedder, Embedder)
    assert embedder.embed(["a", "b"]).shape == (2, 2) and embedder.dimension == 2


def test_background_embedder_loads_in_a_thread_and_reraises() -> None:
    gate = threading.Event()

    def build() -> Embedder:
        gate.wait(5)
        return _Constant()

    embedder = BackgroundEmbedder(build)
    assert not embedder.ready  # construction did not wait for the model
    gate.set()
    assert embedder.dimension == 2 and embedder.ready

    def broken() -> Embedder:
        raise EmbedderError("no model here")

    with pytest.raises(EmbedderError, match="no model here"):
        BackgroundEmbedder(broken).embed(["a"])


@pytest.fixture
def ollama_like_server(minilm: MiniLMEmbedder) -> Iterator[str]:
    """A local HTTP server answering Ollama's /api/embed with real MiniLM vectors (scaled)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body["model"] != "all-minilm":
                self._reply(404, {"error": f"model '{body['model']}' not found"})
                return
            vectors = (minilm.embed(body["input"]) * 3.0).tolist()  # Ollama need not normalise
            self._reply(200, {"model": body["model"], "embeddings": vectors})

        def _reply(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_ollama_embedder_normalises(ollama_like_server: str, minilm: MiniLMEmbedder) -> None:
    embedder = OllamaEmbedder(ollama_like_server)
    vectors = embedder.embed(SENTENCES[:3])
    assert embedder.dimension == 384
    np.testing.assert_allclose(vectors, minilm.embed(SENTENCES[:3]), atol=1e-5)
    with pytest.raises(EmbedderError, match="ollama pull other"):
        OllamaEmbedder(ollama_like_server, "other").embed(["a"])


def test_ollama_down_says_how_to_start_it() -> None:
    with pytest.raises(BackendUnavailableError, match="ollama serve"):
        OllamaEmbedder("http://127.0.0.1:9").embed(["a"])
