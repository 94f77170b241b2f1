"""Forget erases: after `mirador memory forget`, no file Mirador keeps holds the text, also
after a restart and after a forget killed half-way; `--all` and `privacy wipe` likewise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from mirador.learning.store import LearningStore
from tests.privacy.conftest import CHROMA, MARKER, OTHER, files_with, ids, mirador


def test_the_told_home_holds_the_secret_in_every_kind_of_file(home: Path) -> None:
    # the greps below can fail: before forgetting, the text is in all these places
    found = files_with(home, MARKER)
    assert {"learning.db", "models/usage.json"} <= set(found)
    assert any(f.startswith("memory/sessions/") for f in found)


def test_forget_erases_the_text_from_every_file_and_keeps_the_rest(home: Path) -> None:
    secret_id, other_id = ids(home)
    result = mirador(home, "memory", "forget", secret_id)
    assert result.returncode == 0, result.stderr
    assert "forgot 1 memory" in result.stdout
    assert files_with(home, MARKER, skip=[CHROMA]) == []
    assert mirador(home, "stats").returncode == 0  # a restart: every file opened again
    assert secret_id not in mirador(home, "memory", "ls").stdout
    assert files_with(home, MARKER, skip=[CHROMA]) == []
    assert files_with(home, "grey cat", skip=[CHROMA])  # the other exchange is kept
    with closing(LearningStore.in_home(home)) as store:
        kept = store.answer(secret_id)
        assert kept.query == "" and kept.embedding is None  # statistics stay, no text
        assert kept.query_type and store.answer(other_id).query == OTHER
    again = mirador(home, "memory", "forget", secret_id)
    assert again.returncode == 1 and f"no memory with id '{secret_id}'" in again.stderr


def test_forget_all_erases_every_text_and_keeps_what_ratings_taught(home: Path) -> None:
    secret_id, _ = ids(home)
    assert mirador(home, "rate", secret_id, "5", "--note", f"{MARKER} was right").returncode == 0
    result = mirador(home, "memory", "forget", "--all", "--yes")
    assert result.returncode == 0, result.stderr
    assert files_with(home, MARKER, skip=[CHROMA]) == []
    assert files_with(home, "grey cat", skip=[CHROMA]) == []
    assert "nothing remembered yet" in mirador(home, "memory", "ls").stdout
    with closing(LearningStore.in_home(home)) as store:
        assert [(r.answer_id, r.rating, r.note) for r in store.latest_ratings()] == [
            (secret_id, 5, None)]


def test_privacy_wipe_leaves_no_personal_file_and_keeps_config_and_models(home: Path) -> None:
    (home / "logs").mkdir(exist_ok=True)  # an MCP server's stderr may hold what it was asked
    (home / "logs" / "mcp-notes.log").write_text(f"search for {MARKER}\n")
    (home / "adapters" / "quick" / "v0001").mkdir(parents=True)  # trained on rated answers
    result = mirador(home, "privacy", "wipe", "--yes")
    assert result.returncode == 0, result.stderr
    assert "nothing personal is left" in result.stdout
    assert files_with(home, MARKER) == [] and files_with(home, "grey cat") == []
    assert not (home / "memory").exists() and not (home / "learning.db").exists()
    assert not (home / "logs").exists() and not (home / "adapters").exists()
    assert (home / "config.yaml").is_file() and list((home / "models").glob("*.verified"))
    assert "nothing remembered yet" in mirador(home, "memory", "ls").stdout


# A forget killed half-way: the child runs the real forget and SIGKILLs itself right after
# one of its steps; running `mirador memory forget` again must finish the job.
_KILLED_AFTER = textwrap.dedent("""
    import os, signal, sys
    from mirador import privacy
    from mirador.learning.store import LearningStore
    from mirador.memory.sessions import SessionLog
    from mirador.memory.store import MemoryStore
    from mirador.settings import load_settings

    owner, name = {"journals": (SessionLog, "forget"), "store": (MemoryStore, "forget"),
                   "learning": (LearningStore, "compact")}[sys.argv[1]]
    step = getattr(owner, name)

    def then_die(*args, **kwargs):
        step(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, then_die)
    privacy.forget(load_settings(), [sys.argv[2]])
""")


@pytest.mark.parametrize("killed_after", ["journals", "store", "learning"])
def test_a_forget_killed_half_way_finishes_when_run_again(home: Path, killed_after: str) -> None:
    secret_id, _ = ids(home)
    child = subprocess.run([sys.executable, "-c", _KILLED_AFTER, killed_after, secret_id],
                           env={**os.environ, "MIRADOR_HOME": str(home)}, capture_output=True,
                           text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert secret_id not in mirador(home, "memory", "ls").stdout or killed_after == "journals"
    again = mirador(home, "memory", "forget", secret_id)
    assert again.returncode in (0, 1), again.stderr  # 1: nothing was left to forget
    assert files_with(home, MARKER, skip=[CHROMA]) == []
    assert mirador(home, "stats").returncode == 0
    assert files_with(home, "grey cat", skip=[CHROMA])


def test_a_forget_process_killed_at_any_moment_is_finished_by_running_it_again(
        home: Path) -> None:
    secret_id, _ = ids(home)
    for delay in (0.5, 1.5, 3.0):
        child = subprocess.Popen([sys.executable, "-m", "mirador", "memory", "forget",
                                  secret_id], env={**os.environ, "MIRADOR_HOME": str(home)},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert mirador(home, "memory", "ls").returncode == 0  # the store opens
    mirador(home, "memory", "forget", secret_id)
    assert files_with(home, MARKER, skip=[CHROMA]) == []
