"""`mirador pull`, run as a real process against local HTTP servers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mirador.cli.pull import ProgressBar
from mirador.models.pull import Meter, Progress
from tests.support.fake_ollama import FakeOllama
from tests.support.file_server import FileServer

REPO = "someone/Tiny-GGUF"


@pytest.fixture
def server(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    with FileServer(repos={REPO: {"tiny.gguf": tiny_gguf}}) as running:
        monkeypatch.setenv("MIRADOR_HF_ENDPOINT", running.url)
        yield running


def mirador(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=120, env=os.environ.copy())


def registered(home: Path) -> dict:
    path = home / "manifest.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def test_pull_from_hugging_face_registers_the_model(server: FileServer, isolated_home: Path,
                                                    tiny_gguf: Path) -> None:
    result = mirador("pull", f"hf:{REPO}/tiny.gguf", "--use-for", "synthesis")
    assert result.returncode == 0, result.stderr
    target = isolated_home / "models" / "tiny.gguf"
    assert result.stdout.splitlines() == [
        f"Downloaded {target} ({tiny_gguf.stat().st_size / 1000:.1f} KB, GGUF, SHA-256 checked).",
        f"Registered model 'tiny' in {isolated_home / 'manifest.yaml'}.",
        "Stage synthesis (persona synthesizer) now runs on it.",
        "Try: mirador ask --model tiny \"What should I focus on today?\""]
    assert "tiny.gguf: 100%" in result.stderr
    manifest = registered(isolated_home)
    assert manifest["models"] == [{"id": "tiny", "backend": "llamacpp", "path": str(target)}]
    assert [(p["id"], p["model"]) for p in manifest["personas"]] == [("synthesizer", "tiny")]
    listed = mirador("models")
    assert listed.returncode == 0 and "tiny" in listed.stdout


@pytest.mark.parametrize(("ref", "message"), [
    (f"hf:{REPO}/missing.gguf", "no such file (HTTP 404)"),
    ("hf:nobody/none/x.gguf", "no such repository on Hugging Face"),
    ("model.bin", "is not something mirador pull can fetch"),
])
def test_bad_references_get_one_clear_line(server: FileServer, isolated_home: Path,
                                           ref: str, message: str) -> None:
    result = mirador("pull", ref)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert registered(isolated_home) == {}


def test_an_unknown_stage_is_refused_before_downloading(server: FileServer,
                                                        isolated_home: Path) -> None:
    result = mirador("pull", f"hf:{REPO}/tiny.gguf", "--use-for", "dessert")
    assert result.returncode == 1 and "--use-for dessert: no stage is called that" in result.stderr
    assert server.requests == []


def test_ctrl_c_keeps_the_part_and_the_next_pull_resumes(server: FileServer, isolated_home: Path,
                                                         tiny_gguf: Path) -> None:
    server.chunk, server.delay = 4096, 0.1  # about twelve seconds for the whole file
    part = isolated_home / "models" / "tiny.gguf.part"
    process = subprocess.Popen([sys.executable, "-m", "mirador", "pull", f"hf:{REPO}/tiny.gguf"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180  # a busy machine starts Python slowly
    while not (part.exists() and part.stat().st_size > 20_000):
        assert time.monotonic() < deadline and process.poll() is None, process.stderr
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "interrupted;" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    kept = part.stat().st_size
    assert 0 < kept < tiny_gguf.stat().st_size and registered(isolated_home) == {}
    server.delay = 0.0
    result = mirador("pull", f"hf:{REPO}/tiny.gguf")
    assert result.returncode == 0, result.stderr
    assert f"bytes={kept}-" in server.ranges()
    assert f"resuming tiny.gguf from {kept / 1000:.1f} KB" in result.stderr
    assert (isolated_home / "models" / "tiny.gguf").read_bytes() == tiny_gguf.read_bytes()
    assert not part.exists()


def test_pull_through_ollama(tiny_gguf: Path, isolated_home: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama(models={}, library={"tiny": tiny_gguf}) as ollama:
        monkeypatch.setenv("OLLAMA_HOST", ollama.url)
        result = mirador("pull", "ollama:tiny", "--use-for", "quick")
        missing = mirador("pull", "ollama:absent")
    assert result.returncode == 0, result.stderr
    assert "pulling manifest" in result.stderr and "success" in result.stderr
    assert result.stdout.splitlines()[:3] == [
        "Pulled tiny into Ollama.", f"Registered model 'tiny' in {isolated_home}/manifest.yaml.",
        "Stage quick_response (persona quick) now runs on it."]
    assert registered(isolated_home)["models"] == [{"id": "tiny", "backend": "ollama",
                                                    "name": "tiny"}]
    assert missing.returncode == 1 and "Ollama has no model 'absent'" in missing.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_speed_and_time_left() -> None:
    now = [0.0]
    screen = Terminal()
    bar = ProgressBar(label="m.gguf", out=screen, meter=Meter(clock=lambda: now[0]))
    bar.show(Progress(0, 10_000_000))
    now[0] = 2.0
    bar.show(Progress(4_000_000, 10_000_000))
    bar.close()
    last = screen.getvalue().split("\r")[-1]
    assert last.startswith("m.gguf [#########               ]  40% "
                           "4.0 MB/10.0 MB 2.0 MB/s ETA 0:03")
    assert last.endswith("\n")
