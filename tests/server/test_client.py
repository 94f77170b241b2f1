"""The CLI uses a running server (as `ollama run` does), and falls back to answering in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from mirador.orchestration.events import Done, Token
from mirador.orchestration.hooks import Query
from mirador.server.client import ServerClient, event_from_dict, find_server, stream_answer
from tests.server.conftest import ServerThread, settings_for, sse_events, write_home
from tests.support.net import free_port, wait_healthy

MIRADOR = str(Path(sys.executable).parent / "mirador")


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    return subprocess.run([MIRADOR, *args], capture_output=True, text=True, env=env, timeout=240)


def test_ask_uses_the_running_server(server: ServerThread) -> None:
    home = server.runtime.settings.home
    served = server.health()["served"]
    result = run_cli(home, "ask", "--json", "--stages", "quick_response", "Name a colour.")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [events[0]["type"], events[-1]["type"]] == ["ack", "done"]
    assert any(e["type"] == "token" for e in events) and events[-1]["status"] == "ok"
    assert server.health()["served"] == served + 1, "the server answered"


def test_ask_renders_the_servers_events_like_its_own(server: ServerThread) -> None:
    result = run_cli(server.runtime.settings.home, "ask", "--chain", "duo", "Name a tree.")
    assert result.returncode == 0, result.stderr
    assert "── brief · brief on smollm2-135m · confidence 0.60 ──" in result.stdout
    assert "── brief_final · brief_final on smollm2-135m · confidence 0.95 ──" in result.stdout


def test_ask_reports_the_servers_errors_plainly(server: ServerThread) -> None:
    result = run_cli(server.runtime.settings.home, "ask", "--chain", "nope", "Hi.")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "chain 'nope' is not in the manifest" in result.stderr


def test_ask_local_answers_in_process(server: ServerThread) -> None:
    served = server.health()["served"]
    result = run_cli(server.runtime.settings.home, "ask", "--local", "--json", "--stages",
                     "quick_response", "Name a bird.")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "ok"
    assert server.health()["served"] == served, "the server was not asked"


def test_a_server_for_another_home_is_not_used(server: ServerThread, tmp_path: Path) -> None:
    assert find_server(server.runtime.settings) == ServerClient(server.url)
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "config.yaml").write_text(f"server: {{port: {server.port}}}\n")
    assert find_server(settings_for(other)) is None
    (other / "config.yaml").write_text(f"server: {{port: {free_port()}}}\n")
    assert find_server(settings_for(other)) is None, "nothing listens there"


async def test_streamed_events_become_the_orchestrators_dataclasses(server: ServerThread) -> None:
    events = [e async for e in stream_answer(ServerClient(server.url), Query(text="Hi there."),
                                             stages=["quick_response"])]
    assert isinstance(events[-1], Done) and any(isinstance(e, Token) for e in events)
    with httpx.stream("POST", f"{server.url}/mirador/ask", timeout=120,
                      json={"query": "Hello.", "stages": ["quick_response"]}) as reply:
        for raw in sse_events(reply):
            assert event_from_dict(raw).to_dict() == raw


def test_mirador_serve_runs_and_stops_cleanly(tmp_path: Path, smollm_gguf: Path) -> None:
    port = free_port()
    home = write_home(tmp_path / "serve-home", smollm_gguf, None, {"port": port})
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    process = subprocess.Popen([MIRADOR, "serve", "--log-level", "warning"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        result = run_cli(home, "ask", "--json", "--stages", "quick_response", "Say hi.")
        assert result.returncode == 0 and json.loads(result.stdout.splitlines()[-1])["answer"]
        assert httpx.get(f"http://127.0.0.1:{port}/mirador/health").json()["served"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"Mirador serving on http://127.0.0.1:{port}" in stderr and "Traceback" not in stderr
