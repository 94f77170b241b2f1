"""A home that has really been told a secret: `mirador ask` on the default model, in a
real process, copied fresh for each test; and a binary-safe grep over a home's files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from mirador.settings import Settings

MARKER = "ZQXMARKER123"
SECRET = f"My locker code is {MARKER}, please remember it."
OTHER = "What is a good name for a grey cat?"
ONE_STAGE = ("stages:\n  - {name: quick_response, persona: quick, confidence: 0.6, "
             "max_tokens: 8, first_token_timeout: 240, total_timeout: 300}\n")  # 2 busy cores


def mirador(home: Path, *args: str, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess[str]:
    """`mirador ARGS` in its own process on `home`."""
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "MIRADOR_HOME": str(home), **env})


def ask(home: Path, text: str, *flags: str) -> str:
    """Ask on the real default model, in-process; returns the answer id."""
    import json

    result = mirador(home, "ask", "--local", "--json", "--stages", "quick_response", *flags,
                     text)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout.splitlines()[0])["answer_id"])


def files_with(home: Path, marker: str, skip: Iterable[str] = ()) -> list[str]:
    """Every file under `home` whose bytes hold `marker` in any letter case (model weights,
    which Mirador only copies from a package, are not read)."""
    needle = marker.lower().encode()
    found = []
    for path in sorted(home.rglob("*")):
        relative = str(path.relative_to(home))
        if not path.is_file() or path.suffix == ".gguf" or relative.startswith(tuple(skip)):
            continue
        if needle in path.read_bytes().lower():
            found.append(relative)
    return found


# Chroma's own files: their erase is the memory store's (MemoryStore.forget, issue 11);
# the tests that grep them are kept apart, in test_vector_store.py.
CHROMA = "memory/chroma"


@pytest.fixture(scope="session")
def told_home(tmp_path_factory: pytest.TempPathFactory, session_settings: Settings) -> Path:
    """A home where the secret and another question were asked (built once)."""
    home = tmp_path_factory.mktemp("told") / "home"
    shutil.copytree(session_settings.models_dir, home / "models", copy_function=os.link,
                    ignore=shutil.ignore_patterns("usage.json", "memory.json"))
    (home / "config.yaml").write_text(ONE_STAGE)
    secret_id = ask(home, SECRET)
    other_id = ask(home, OTHER)
    (home / "ids").write_text(f"{secret_id}\n{other_id}\n")
    return home


@pytest.fixture
def home(told_home: Path, isolated_home: Path) -> Path:
    """This test's home (with the default model in place) holding a copy of the told one."""
    shutil.copytree(told_home, isolated_home, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.gguf*"))
    return isolated_home


def ids(home: Path) -> tuple[str, str]:
    secret_id, other_id = (home / "ids").read_text().split()
    return secret_id, other_id
