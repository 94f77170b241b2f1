"""A real uvicorn server on 127.0.0.1, shared by the server tests.

The server runs in a thread of the test process, so a test can look inside it
(the gate, the model locks) and inject faults through its orchestrator, while
every request still goes over a real socket through real clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
import uvicorn
import yaml

from mirador.backends import ChatRequest
from mirador.compose import create_orchestrator
from mirador.server.app import create_app
from mirador.server.runtime import ServerRuntime
from mirador.settings import Settings, load_settings
from tests.conftest import link_default_model
from tests.support.net import free_port

SHORT = 24  # tokens per stage: enough to see streaming, short enough for 2 cores
EMBEDDER = "smol-embed"  # the shared server's embedding model: SmolLM2 with embedding=True



class ServerThread:
    """uvicorn serving `app` on 127.0.0.1:`port` in a background thread."""

    def __init__(self, app: object, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                ws="none", lifespan="on", timeout_graceful_shutdown=2)
        self.app = app
        self.port = port
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self) -> ServerRuntime:
        return self.app.state.runtime  # type: ignore[attr-defined, no-any-return]

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def health(self, **headers: str) -> dict:
        return httpx.get(f"{self.url}/mirador/health", headers=headers, timeout=10).json()


def write_home(home: Path, default_gguf: Path, tiny: Path | None, server: dict,
               stages_tokens: int = SHORT, config: dict | None = None) -> Path:
    """A Mirador home with the default model verified, short stages and a small test manifest."""
    link_default_model(home, default_gguf)
    stages = [
        {"name": "quick_response", "persona": "quick", "confidence": 0.6},
        {"name": "deep_analysis", "persona": "analyst", "confidence": 0.85},
        {"name": "synthesis", "persona": "synthesizer", "confidence": 0.95},
    ]
    for stage in stages:
        stage["max_tokens"] = stages_tokens
    (home / "config.yaml").write_text(yaml.safe_dump({"server": server, "stages": stages,
                                                      **(config or {})}))
    manifest: dict = {
        "personas": [
            {"id": "brief", "model": "smollm2-135m", "system": "Answer in one short sentence.",
             "options": {"temperature": 0.3, "max_tokens": SHORT}},
            {"id": "brief_final", "model": "smollm2-135m",
             "system": "Improve the answer given, in one short sentence.",
             "options": {"temperature": 0.3, "max_tokens": SHORT}},
        ],
        "chains": [{"id": "duo", "description": "Two short stages.",
                    "steps": ["brief", "brief_final"]}],
    }
    if tiny is not None:
        manifest["models"] = [{"id": "tiny", "backend": "llamacpp", "path": str(tiny),
                               "context_length": 512},
                              {"id": EMBEDDER, "backend": "llamacpp", "embedding": True,
                               "path": str(default_gguf), "context_length": 512}]
    (home / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return home


def settings_for(home: Path, **env: str) -> Settings:
    return load_settings(home=home, env={"MIRADOR_HOME": str(home), **env})


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, smollm_gguf: Path,
           tiny_gguf: Path) -> Iterator[ServerThread]:
    """The shared server: the real default model, warm for the whole run."""
    port = free_port()
    home = write_home(tmp_path_factory.mktemp("server-home"), smollm_gguf, tiny_gguf,
                      {"port": port, "max_active": 4, "max_queued": 32})
    thread = ServerThread(create_app(settings_for(home)), port).start()
    yield thread
    thread.stop()


@pytest.fixture
def oclient(server: ServerThread) -> Iterator[ollama.Client]:
    """The official `ollama` client on the shared server."""
    with ollama.Client(host=server.url, timeout=180) as c:
        yield c


@pytest.fixture
def oai(server: ServerThread) -> Iterator[openai.OpenAI]:
    """The official `openai` client on the shared server's /v1 (no retries: a failure shows)."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0,
                       timeout=180) as c:
        yield c


@pytest.fixture
def requests_seen(server: ServerThread, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[list[ChatRequest]]:
    """Every request the server's model manager runs (it still runs them)."""
    manager = server.runtime.orchestrator.manager
    seen: list[ChatRequest] = []
    real = manager.stream_chat

    def spy(request: ChatRequest) -> AsyncIterator[Any]:
        seen.append(request)
        return real(request)

    monkeypatch.setattr(manager, "stream_chat", spy)
    yield seen


@pytest.fixture
def make_server(tmp_path: Path, smollm_gguf: Path) -> Iterator[Callable[..., ServerThread]]:
    """Start a throw-away server with its own settings (and, optionally, orchestrator)."""
    started: list[ServerThread] = []

    def start(server: dict | None = None, factory: Callable = create_orchestrator,
              env: dict[str, str] | None = None, config: dict | None = None,
              **app_options: Any) -> ServerThread:
        port = free_port()
        home = write_home(tmp_path / f"home-{port}", smollm_gguf, None,
                          {"port": port, **(server or {})}, config=config)
        app = create_app(settings_for(home, **(env or {})), factory, warm=False, **app_options)
        started.append(ServerThread(app, port).start())
        return started[-1]

    yield start
    for thread in started:
        thread.stop()


def sse_events(response: httpx.Response) -> Iterator[dict]:
    """Parse a native SSE response into event dicts, checking that `event:` matches `type`."""
    import json

    name = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:])
            assert data["type"] == name
            yield data
