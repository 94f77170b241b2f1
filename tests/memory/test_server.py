"""The same store code over a real Chroma server (HTTP client), selected by configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.memory.memory import ranking_params
from mirador.memory.store import MemoryStore, open_client
from mirador.settings import ChromaServerConfig, Settings, load_settings
from tests.memory.conftest import rec
from tests.support.net import free_port, listening, wait_for


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`chroma run` from the chromadb package, on 127.0.0.1, telemetry off."""
    binary = shutil.which("chroma", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("the chromadb package installed no 'chroma' command")
    port = free_port()
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"}
    server = subprocess.Popen([binary, "run", "--host", "127.0.0.1", "--port", str(port),
                               "--path", str(tmp_path_factory.mktemp("chroma-server"))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        if not wait_for(lambda: server.poll() is not None or listening(port), 60, every=0.1):
            pytest.fail("chroma run did not start listening within 60 s")
        if server.poll() is not None:
            pytest.fail(f"chroma run exited with {server.returncode}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)



def _served(settings: Settings, port: int) -> Settings:
    server = ChromaServerConfig(host="127.0.0.1", port=port)
    return load_settings(memory=settings.config.memory.model_copy(
        update={"chroma_server": server}))


def test_configuration_selects_the_http_client(settings: Settings, chroma_server: int,
                                               minilm: MiniLMEmbedder) -> None:
    stores = [MemoryStore(open_client(s), minilm, ranking_params(s))
              for s in (_served(settings, chroma_server), settings)]
    served, local = (s.client.get_settings() for s in stores)
    for store in stores:
        store.close()
    assert served.chroma_api_impl == "chromadb.api.fastapi.FastAPI"  # what HttpClient uses
    assert (served.chroma_server_host, served.chroma_server_http_port) == \
        ("127.0.0.1", chroma_server)
    assert local.chroma_api_impl == "chromadb.api.rust.RustBindingsAPI"  # PersistentClient
    assert served.anonymized_telemetry is False and local.anonymized_telemetry is False


def test_memories_round_trip_through_the_server(settings: Settings, chroma_server: int,
                                                minilm: MiniLMEmbedder) -> None:
    served = _served(settings, chroma_server)
    store = MemoryStore(open_client(served), minilm, ranking_params(served))
    store.forget_all()
    store.add([rec("srv1", "My manager Priya wants status updates on Fridays."),
               rec("srv2", "I water the plants on Sundays.")])
    store.close()
    again = MemoryStore(open_client(served), minilm, ranking_params(served))
    hits = again.recall("When is my status update due?", time.time())
    assert hits[0].record.id == "srv1"
    assert not (settings.home / "memory" / "chroma").exists()  # nothing went to local files
    assert again.forget(["srv1"]) == 1 and again.get("srv1") is None
    again.close()
