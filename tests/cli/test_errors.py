"""Unexpected input to the CLI is a clear error naming what is wrong, never
"internal error: <ExceptionName>", and a damaged file is reported and left as it is."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

BINARY = b"color: \xff\xfe\x00\x89PNG\r\n\x1a\n"


def mirador(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=300, env=os.environ.copy(), input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def _clear_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["config.yaml", "manifest.yaml"])
def test_a_binary_settings_file_is_named(isolated_home: Path, name: str) -> None:
    (isolated_home / name).write_bytes(BINARY)
    _clear_error(mirador("models", "check"), str(isolated_home / name), "not UTF-8")


def test_a_control_character_in_yaml_is_named(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_bytes(b'color: "\x00"\n')
    result = mirador("route", "hi")
    _clear_error(result, "config.yaml", "offset")
    assert "special characters" in result.stderr or "control characters" in result.stderr


@pytest.mark.parametrize("target", ["/proc/nope.jsonl", "/no/such/folder/out.jsonl"])
def test_export_to_a_path_that_cannot_be_written(isolated_home: Path, target: str) -> None:
    _clear_error(mirador("memory", "export", target), target, "check the path")


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 50],
                         ids=["empty", "foreign"])
def test_a_damaged_vector_store_is_reported_and_left_untouched(isolated_home: Path,
                                                               content: bytes) -> None:
    store = isolated_home / "memory" / "chroma" / "chroma.sqlite3"
    store.parent.mkdir(parents=True)
    store.write_bytes(content)
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    _clear_error(mirador("memory", "ls"), str(store), "left exactly as it is", "mv ")
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in store.parent.iterdir()) == ["chroma.sqlite3"]


def test_a_whitespace_query_is_refused_and_nothing_is_stored(isolated_home: Path) -> None:
    _clear_error(mirador("ask", "--local", "   \t  "), "the query is empty")
    _clear_error(mirador("ask", "--local", "-", stdin="  \n\n "), "the query is empty")
    assert not (isolated_home / "learning.db").exists()
    assert not (isolated_home / "memory").exists()


def test_a_session_id_that_is_a_path_is_refused(isolated_home: Path) -> None:
    _clear_error(mirador("ask", "--local", "--session", "../../etc/passwd", "hi"),
                 "session id '../../etc/passwd' is not valid")


def _run_bytes(*args: bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable.encode(), b"-m", b"mirador", *args],
                          capture_output=True, timeout=300, env=os.environ.copy(), input=stdin)


def test_a_query_that_is_not_utf8_is_refused_before_anything_runs(isolated_home: Path) -> None:
    for result in (_run_bytes(b"ask", b"--local", b"-", stdin=b"\xff\xfe binary"),
                   _run_bytes(b"ask", b"--local", b"caf\xe9 au lait")):
        assert result.returncode == 2
        assert b"not UTF-8 text" in result.stderr and b"internal error" not in result.stderr
    assert not (isolated_home / "learning.db").exists()


def test_chat_skips_a_line_that_is_not_text(isolated_home: Path) -> None:
    result = _run_bytes(b"chat", stdin=b"\xff\xfe\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert b"not UTF-8 text" in result.stderr and b"internal error" not in result.stderr


def test_serve_refuses_a_port_out_of_range(isolated_home: Path) -> None:
    _clear_error(mirador("serve", "--port", "70000"), "--port", "1<=x<=65535")


def test_a_config_with_no_stages_is_refused(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("stages: []\n")
    _clear_error(mirador("ask", "--local", "hi"), "config.yaml", "stages", "at least 1")


def test_serve_with_a_bad_agent_stops_before_saying_it_serves(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        "agents:\n  - {name: morning, prompt: Plan my day, trigger: 'hourly-ish'}\n")
    result = mirador("serve", "--port", "11599")
    _clear_error(result, "trigger")
    assert "serving on" not in result.stderr
