"""The `mirador` command, run as a real process on the real default model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

FAST_CONFIG = """
stages:
  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 16}
  - {name: deep_analysis, persona: analyst, confidence: 0.85, max_tokens: 16}
  - {name: synthesis, persona: synthesizer, confidence: 0.95, max_tokens: 16}
"""


def mirador(*args: str, input: str | None = None, timeout: float = 240
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, input=input, timeout=timeout, env=os.environ.copy())


@pytest.fixture
def fast_home(isolated_home: Path) -> Path:
    (isolated_home / "config.yaml").write_text(FAST_CONFIG)
    return isolated_home


def test_ask_json_streams_typed_events(fast_home: Path) -> None:
    result = mirador("ask", "--json", "--stages", "quick_response,synthesis",
                     "What should I focus on today?")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "ack" and types[-1] == "done"
    assert types.count("stage_start") == types.count("stage_end") == 2
    tokens = [e for e in events if e["type"] == "token"]
    assert tokens and {t["stage"] for t in tokens} == {"quick_response", "synthesis"}
    assert {t["confidence"] for t in tokens} == {0.6, 0.95}
    done = events[-1]
    assert done["status"] == "ok" and done["answer"]
    assert done["final_stage"] in ("quick_response", "synthesis")  # the gate's pick
    assert done["answer"] == "".join(t["text"] for t in tokens
                                     if t["stage"] == done["final_stage"]).strip()


def test_ask_quiet_prints_only_the_final_answer(fast_home: Path) -> None:
    result = mirador("ask", "--quiet", "What is the capital of Portugal?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "──" not in result.stdout  # no stage headers
    assert "confidence" not in result.stdout and "set aside" not in result.stdout


def test_colour_follows_confidence_and_can_be_turned_off(fast_home: Path) -> None:
    (fast_home / "config.yaml").write_text(FAST_CONFIG + "color: always\n")
    coloured = mirador("ask", "--stages", "quick_response,deep_analysis,synthesis", "Hi there")
    assert coloured.returncode == 0, coloured.stderr
    assert "\x1b[90m" in coloured.stdout  # 0.6: grey
    assert "\x1b[97m" in coloured.stdout  # 0.85: white
    assert "\x1b[36m" in coloured.stdout  # 0.95: cyan
    assert "── quick_response" in coloured.stdout
    plain = mirador("ask", "--no-color", "--stages", "quick_response", "Hi there")
    assert "\x1b[" not in plain.stdout and "── quick_response" in plain.stdout


@contextlib.contextmanager
def streaming_a_long_answer(home: Path) -> Iterator[subprocess.Popen[str]]:
    """`mirador ask --json` on a long answer, once its first token is out; a process that
    hangs after what the test does fails it, and is not left running after it."""
    (home / "config.yaml").write_text(
        "stages:\n  - {name: quick_response, persona: analyst, confidence: 0.6, "
        "max_tokens: 2000}\n")
    with subprocess.Popen([sys.executable, "-m", "mirador", "ask", "--json", "Tell me a story"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=os.environ.copy()) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while '"type": "token"' not in proc.stdout.readline():
            assert proc.poll() is None, proc.stderr.read()
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def test_ctrl_c_stops_cleanly_with_130(fast_home: Path) -> None:
    with streaming_a_long_answer(fast_home) as proc:
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        code = proc.wait(timeout=30)
        stopped_in = time.monotonic() - started
        errors = proc.stderr.read()  # type: ignore[union-attr]
    assert code == 130, errors
    assert stopped_in < 10
    assert "Traceback" not in errors


def test_a_reader_that_goes_away_ends_the_answer(fast_home: Path) -> None:
    """`mirador ask ... | head -1`: the closed pipe ends the answer and the process,
    rather than leaving it waiting for a model the abandoned stream still held."""
    with streaming_a_long_answer(fast_home) as proc:
        proc.stdout.close()  # type: ignore[union-attr]  # the next token's write fails
        code = proc.wait(timeout=60)
        errors = proc.stderr.read()  # type: ignore[union-attr]
    assert code == 1, errors  # click's exit for a broken pipe, said quietly
    assert "Traceback" not in errors and "internal error" not in errors


def test_route_prints_the_decision_without_generating(fast_home: Path) -> None:
    result = mirador("route", "--json", "Explain in depth how rising interest rates affect "
                     "a family with a variable-rate mortgage, and what they should do")
    decision = json.loads(result.stdout)
    assert decision["complexity"] == "complex"
    assert decision["stages"] == ["quick_response", "deep_analysis", "synthesis"]


def test_the_next_ask_starts_warm_and_shows_everything(fast_home: Path) -> None:
    first = mirador("ask", "--json", "Name a colour.")
    assert first.returncode == 0, first.stderr
    assert (fast_home / "cache" / "first-model.json").exists()  # the warm-start hint
    again = mirador("ask", "--json", "Name a fruit.")  # its first model loads from the start
    assert again.returncode == 0, again.stderr
    types = [json.loads(line)["type"] for line in again.stdout.splitlines()]
    assert types[0] == "ack" and "token" in types and types[-1] == "done"
    (fast_home / "config.yaml").write_text(FAST_CONFIG + "colour: never\n")
    broken = mirador("ask", "hi")  # said while the hinted model loads, and not lost
    assert broken.returncode == 1 and "colour: unknown field" in broken.stderr


def test_a_bad_config_is_a_message_not_a_traceback(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("colour: never\n")
    result = mirador("ask", "hi")
    assert result.returncode == 1
    assert "config.yaml: colour: unknown field" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_model_fails_the_answer_with_its_reason(isolated_home: Path) -> None:
    (isolated_home / "manifest.yaml").write_text(
        "models:\n  - id: smollm2-135m\n    path: /nowhere/model.gguf\n")
    result = mirador("ask", "--stages", "quick_response", "hi")
    assert result.returncode == 1
    assert "/nowhere/model.gguf does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_models_lists_the_manifest(isolated_home: Path) -> None:
    result = mirador("models")
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m" in result.stdout and "synthesizer" in result.stdout


def test_chat_answers_each_line_until_exit(fast_home: Path) -> None:
    result = mirador("chat", "--stages", "quick_response", "--no-color",
                     input="Hello there\nWhat is two plus two?\n/exit\nnever read\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("── quick_response") == 2


def test_importing_the_cli_loads_no_model_library() -> None:
    code = ("import sys, mirador.cli.main, mirador.cli.ask, mirador.cli.chat; "
            "heavy = {'llama_cpp', 'chromadb', 'torch', 'ollama', 'openai', "
            "'sentence_transformers'} & set(sys.modules); print(sorted(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
