"""Security: loopback by default, a token off loopback, size limits, no CORS, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from mirador.errors import ConfigError
from mirador.server.limits import check_bind, is_loopback
from tests.server.conftest import ServerThread

TOKEN = "s3cret-token"
MIRADOR = str(Path(sys.executable).parent / "mirador")


@pytest.fixture
def guarded(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server({"api_token": TOKEN, "max_request_bytes": 4096})


def test_a_token_is_required_on_every_api_call(guarded: ServerThread) -> None:
    for path in ("/mirador/health", "/api/tags", "/v1/models", "/openapi.json"):
        missing = httpx.get(f"{guarded.url}{path}")
        assert missing.status_code == 401, path
        assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.get(f"{guarded.url}/mirador/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "token is wrong" in wrong.json()["error"]["message"]
    assert guarded.health(Authorization=f"Bearer {TOKEN}")["status"] == "ok"
    assert httpx.get(f"{guarded.url}/").status_code == 200, "the page itself holds no data"


def test_clients_pass_the_token_as_they_usually_do(guarded: ServerThread) -> None:
    with ollama.Client(host=guarded.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert "mirador:auto" in {m.model for m in client.list().models}
    with ollama.Client(host=guarded.url) as anonymous, pytest.raises(ollama.ResponseError) as err:
        anonymous.list()
    assert err.value.status_code == 401 and "needs an API token" in err.value.error
    with openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=TOKEN, max_retries=0) as oai:
        assert "mirador:quick" in {m.id for m in oai.models.list()}
    with openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="bad", max_retries=0) as oai, \
            pytest.raises(openai.AuthenticationError):
        oai.models.list()


def test_request_bodies_over_the_limit_are_refused(guarded: ServerThread) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    big = {"query": "x" * 10_000}
    declared = httpx.post(f"{guarded.url}/mirador/ask", json=big, headers=auth)
    assert declared.status_code == 413
    assert "over 4096 bytes" in declared.json()["error"]["message"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        yield b'{"query": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    streamed = httpx.post(f"{guarded.url}/mirador/ask", content=chunks(),
                          headers={**auth, "content-type": "application/json"})
    assert streamed.status_code == 413
    assert "max_request_bytes" in streamed.json()["error"]["message"]
    ollama_style = httpx.post(f"{guarded.url}/api/chat", json={"model": "x", "pad": "z" * 9000},
                              headers=auth)
    assert ollama_style.status_code == 413 and isinstance(ollama_style.json()["error"], str)


def test_cors_is_off_and_other_origins_are_refused(server: ServerThread) -> None:
    preflight = httpx.options(f"{server.url}/api/chat",
                              headers={"Origin": "https://evil.example",
                                       "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    forged = httpx.post(f"{server.url}/api/generate", content=b'{"model": "tiny", "prompt": ""}',
                        headers={"Origin": "https://evil.example", "content-type": "text/plain"})
    assert forged.status_code == 403 and "server.cors_origins" in forged.json()["error"]
    own = httpx.get(f"{server.url}/mirador/health", headers={"Origin": server.url})
    assert own.status_code == 200


def test_configured_cors_origins_may_call(make_server: Callable[..., ServerThread]) -> None:
    server = make_server({"cors_origins": ["http://localhost:3000"]})
    preflight = httpx.options(f"{server.url}/api/chat",
                              headers={"Origin": "http://localhost:3000",
                                       "Access-Control-Request-Method": "POST"})
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_foreign_host_headers_are_refused_on_loopback(server: ServerThread) -> None:
    rebound = httpx.get(f"{server.url}/mirador/health", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 403 and "loopback only" in rebound.json()["error"]["message"]
    assert httpx.get(f"http://localhost:{server.port}/mirador/health").status_code == 200


def test_errors_never_carry_a_traceback(server: ServerThread) -> None:
    for method, path, body in (("POST", "/api/chat", b"[1, 2"), ("POST", "/v1/chat/completions",
                               b'{"model": 3}'), ("GET", "/nowhere", None)):
        reply = httpx.request(method, f"{server.url}{path}", content=body,
                              headers={"content-type": "application/json"})
        assert reply.status_code in (400, 404) and "Traceback" not in reply.text
        assert reply.headers["content-type"] == "application/json" and reply.json()["error"]


def test_binding_beyond_loopback_needs_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "token")
    with pytest.raises(ConfigError, match="needs an API token"):
        check_bind("0.0.0.0", None)


def test_serve_refuses_to_start_off_loopback_without_a_token() -> None:
    result = subprocess.run([MIRADOR, "serve", "--host", "0.0.0.0"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "needs an API token" in result.stderr and "Traceback" not in result.stderr
    assert "serving" not in result.stderr


def test_serve_says_when_the_port_is_taken(server: ServerThread) -> None:
    result = subprocess.run([MIRADOR, "serve", "--port", str(server.port)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "already in use" in result.stderr
