"""Two Mirador homes (a publisher's and an installer's), package builders and a real
static HTTP server on 127.0.0.1 for indexes and URL installs."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirador.catalog.packaged import recorded_sha256
from mirador.market.keys import new_key, trust
from mirador.settings import Settings, load_settings
from tests.conftest import DEFAULT_PACKAGE, link_default_model
from tests.support.loopback import LoopbackHTTPServer

CALM = {"id": "calm_coach", "model": "smollm2-135m", "description": "calm practical coach",
        "system": "You are a calm, practical coach. Give short, concrete advice in a few "
                  "sentences.", "options": {"temperature": 0.2, "max_tokens": 120}}
CALM_CHAIN = {"id": "calm", "description": "the calm coach alone", "steps": ["calm_coach"]}


@pytest.fixture
def publisher(tmp_path: Path, smollm_gguf: Path) -> Settings:
    """The publisher's home, with a key named 'ada'."""
    settings = load_settings(home=link_default_model(tmp_path / "publisher", smollm_gguf),
                             env={})
    new_key(settings, "ada")
    return settings


@pytest.fixture
def installer(settings: Settings, publisher: Settings) -> Settings:
    """The installer's home (the test's MIRADOR_HOME), trusting the publisher's 'ada'."""
    trust(settings, publisher.home / "market" / "keys" / "ada.pub")
    return settings


@pytest.fixture(scope="session")
def base_sha(smollm_gguf: Path) -> str:
    found = recorded_sha256(DEFAULT_PACKAGE, smollm_gguf)
    return found or hashlib.sha256(smollm_gguf.read_bytes()).hexdigest()


def write_package(directory: Path, base_sha: str, *, personas: list[dict[str, Any]] | None = None,
                  chains: list[dict[str, Any]] | None = None,
                  adapters: dict[str, Path] | None = None, **manifest: Any) -> Path:
    """A package directory: its manifest, one file per persona and chain, adapters copied."""
    personas = [CALM] if personas is None else personas
    chains = [CALM_CHAIN] if chains is None else chains
    contents = []
    for kind, entries in (("persona", personas), ("chain", chains)):
        for entry in entries:
            relative = f"{kind}s/{entry['id']}.yaml"
            _write(directory / relative, yaml.safe_dump(entry))
            contents.append({"kind": kind, "path": relative})
    for relative, source in (adapters or {}).items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_bytes(source.read_bytes())
        contents.append({"kind": "adapter", "path": relative})
    data = {"id": "calm-coach", "version": "1.0.0", "author": "Ada Lovelace",
            "licence": "Apache-2.0", "description": "A calm coach for everyday planning.",
            "base_model": {"id": "smollm2-135m", "sha256": base_sha}, "contents": contents,
            **manifest}
    _write(directory / "mirador-package.yaml", yaml.safe_dump(data, sort_keys=False))
    return directory


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def snapshot(home: Path) -> dict[str, str]:
    """Every file under `home` and its SHA-256: equal snapshots, an unchanged home."""
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


class StaticServer(LoopbackHTTPServer):
    """Python's own http.server serving a directory on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _bind(self) -> ThreadingHTTPServer:
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        return ThreadingHTTPServer(("127.0.0.1", 0), handler)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # keep the test output clean


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[StaticServer]:
    root = tmp_path / "served"
    root.mkdir()
    with StaticServer(root) as server:
        yield server
