"""`mirador memory ...` and the memory flags of `mirador ask`, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirador.errors import ConfigError
from mirador.memory.sessions import SessionLog, Turn, session_for
from mirador.settings import load_settings

ONE_STAGE = """
stages:
  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 12}
"""
LINES = [
    {"id": "m01", "namespace": "personal", "query": "I'm training for a half marathon.",
     "response": "Build up slowly.", "timestamp": "2026-06-04T12:00:00Z"},
    {"id": "m02", "namespace": "work", "query": "We picked Postgres for the orders service.",
     "response": "Plan the schema first.", "timestamp": "2026-10-29T12:00:00Z"},
]


def mirador(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy(),
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def imported(isolated_home: Path, tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    result = mirador("memory", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert "imported 2 memories" in result.stdout
    return path


def test_ls_search_show_export(imported: Path, tmp_path: Path) -> None:
    listed = mirador("memory", "ls")
    assert listed.stdout.splitlines()[0].startswith("m02")  # newest first
    found = json.loads(mirador("memory", "search", "which database for orders",
                               "--namespace", "work", "--json").stdout)
    assert [f["id"] for f in found] == ["m02"] and 0 < found[0]["score"] <= 1.5
    assert "Plan the schema first." in mirador("memory", "show", "m02").stdout
    out = tmp_path / "out.jsonl"
    assert mirador("memory", "export", str(out)).returncode == 0
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["m01", "m02"]
    missing = mirador("memory", "show", "nope")
    assert missing.returncode == 1 and "no memory with id 'nope'" in missing.stderr


def test_a_bad_import_names_the_line_and_keeps_everything(imported: Path,
                                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**LINES[0], "id": "m03"}) + "\n{\"id\": \"m04\"}\n")
    result = mirador("memory", "import", str(bad))
    assert result.returncode == 1
    assert "bad.jsonl:2: missing fields 'namespace', 'query', 'response'" in result.stderr
    assert "Traceback" not in result.stderr
    ids = [json.loads(x)["id"] for x in mirador("memory", "ls", "--json").stdout.splitlines()]
    assert sorted(ids) == ["m01", "m02"]


def test_forget_by_id_query_and_all(imported: Path) -> None:
    assert "forgot 1 memory" in mirador("memory", "forget", "m01").stdout
    assert mirador("memory", "forget", "m01").returncode == 1
    # gone for the next processes: search, export and show
    found = json.loads(mirador("memory", "search", "training for a half marathon", "--json").stdout)
    assert "m01" not in [f["id"] for f in found]
    assert "m01" not in mirador("memory", "export", "-").stdout
    assert mirador("memory", "show", "m01").returncode == 1
    result = mirador("memory", "forget", "--query", "Postgres orders database", "--yes")
    assert "forgot 1 memory" in result.stdout and "m02" in result.stdout
    assert mirador("memory", "ls").stdout.startswith("nothing remembered yet")
    assert mirador("memory", "import", str(imported)).returncode == 0
    assert "forgot 2 memories" in mirador("memory", "forget", "--all", "--yes").stdout
    usage = mirador("memory", "forget")
    assert usage.returncode != 0 and "exactly one of" in usage.stderr


def test_memory_commands_refuse_when_memory_is_off(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("memory: {enabled: false}\n")
    result = mirador("memory", "ls")
    assert result.returncode == 1 and "memory is turned off" in result.stderr


def test_ask_remembers_continues_and_no_memory_writes_nothing(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(ONE_STAGE)
    first = mirador("ask", "--local", "--json", "My cat is called Miso.")
    assert first.returncode == 0, first.stderr
    second = mirador("ask", "--local", "--json", "--continue", "What is my cat called?")
    assert second.returncode == 0, second.stderr
    records = [json.loads(x) for x in mirador("memory", "ls", "--json").stdout.splitlines()]
    assert len(records) == 2 and records[0]["session_id"] == records[1]["session_id"]
    log = SessionLog(isolated_home / "memory" / "sessions")
    assert [t.query for t in log.turns(records[0]["session_id"])] == \
        ["My cat is called Miso.", "What is my cat called?"]

    private = mirador("ask", "--local", "--json", "--no-memory", "My PIN is 4321.")
    assert private.returncode == 0, private.stderr
    after = mirador("memory", "ls", "--json").stdout
    assert "4321" not in after and len(after.splitlines()) == 2
    assert log.last_session() == records[0]["session_id"]

    named = mirador("ask", "--local", "--json", "--session", "trip-2027", "--namespace",
                    "travel", "Kyoto in April?")
    assert named.returncode == 0, named.stderr
    travel = json.loads(mirador("memory", "ls", "--json", "--namespace", "travel").stdout)
    assert travel["session_id"] == "trip-2027"


def test_session_resolution(isolated_home: Path) -> None:
    log = SessionLog(isolated_home / "memory" / "sessions")
    fresh, history = session_for(log, continue_last=True, session_id=None)
    assert len(fresh) == 12 and history == ()  # nothing to continue: a new session
    log.append("s1", Turn("a1", "Hello?", "Hi.", 1.0))
    log.set_last("s1")
    session, history = session_for(log, continue_last=True, session_id=None)
    assert session == "s1" and [m.content for m in history] == ["Hello?", "Hi."]
    with pytest.raises(ConfigError, match="either --continue or --session"):
        session_for(log, True, "s2")
    with pytest.raises(ConfigError, match="not valid"):
        session_for(log, False, "../etc/passwd")
    log.forget(["a1"])
    assert log.turns("s1") == [] and load_settings().config.memory.enabled


def test_import_and_search_json_on_a_full_namespace(isolated_home: Path, tmp_path: Path) -> None:
    """The path a user (and the issue's check) takes: import 599 memories of the recall
    set's tuning half, then search --json returns the top 5, best first, with scores."""
    data = json.loads((Path(__file__).parents[2] / "bench" / "data" / "recall_set.json")
                      .read_text())
    lines = [m for m in data["memories"] if m["namespace"] == "dev"]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = mirador("memory", "import", str(path))
    assert imported.returncode == 0 and f"imported {len(lines)} memories" in imported.stdout
    found = json.loads(mirador("memory", "search", "Which book is on my nightstand?",
                               "--namespace", "dev", "--json").stdout)
    scores = [f["score"] for f in found]
    assert len(found) == 5 and scores == sorted(scores, reverse=True)
    text = {m["id"]: m["query"] for m in lines}
    assert "I'm reading Emma before bed." in [text[f["id"]] for f in found]


def with_letters(*args: str) -> subprocess.CompletedProcess[str]:
    """`mirador ARGS` in a process where `memory.embedder: letters` names another model
    (26 dimensions), registered as a plugin would register it."""
    code = ("import sys; from mirador.embeddings import register_embedder; "
            "from tests.memory.test_reindex import Letters; "
            "register_embedder('letters', lambda settings: Letters()); "
            "from mirador.cli.main import main; sys.argv[0] = 'mirador'; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300, env=os.environ.copy(), stdin=subprocess.DEVNULL)


def test_another_embedder_is_refused_until_reindex(imported: Path, isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("memory:\n  embedder: letters\n")
    refused = with_letters("memory", "search", "half marathon")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "run 'mirador memory reindex'" in refused.stderr
    done = with_letters("memory", "reindex")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["personal: 1 memories embedded again",
                                        "work: 1 memories embedded again"]
    found = json.loads(with_letters("memory", "search", "half marathon", "--json").stdout)
    assert [f["id"] for f in found] == ["m01", "m02"]
    assert "I'm training for a half marathon." in with_letters("memory", "show", "m01").stdout
