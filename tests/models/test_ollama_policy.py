"""The budget and eviction policy on Ollama: preload, keep_alive 0 to unload, `ps` to measure.

The server is tests/support/fake_ollama.py: Ollama's HTTP API over real llama.cpp.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import ollama
import pytest

from mirador.catalog.manifest import Manifest
from mirador.models.clock import ManualClock
from mirador.settings import load_settings
from tests.models.conftest import ManagerFactory, MiB, until
from tests.models.test_manager import answer, request
from tests.support.fake_ollama import FakeOllama


@pytest.fixture
def server(sized_ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    with FakeOllama({"one": sized_ggufs["alpha"], "two": sized_ggufs["beta"]},
                    n_ctx=512) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        yield fake


def ollama_manifest(keep_alive: float | None = None) -> Manifest:
    return Manifest.model_validate({
        "models": [{"id": n, "backend": "ollama", "name": n, "keep_alive": keep_alive}
                   for n in ("one", "two")],
        "personas": [{"id": "first", "model": "one", "system": "Answer."},
                     {"id": "second", "model": "two", "system": "Answer."},
                     {"id": "first_again", "model": "first", "system": "Briefly."}]})


def loaded_on(server: FakeOllama) -> set[str]:
    return {m["name"] for m in server.ps()["models"]}


async def test_ollama_models_are_measured_evicted_and_shared_like_local_ones(
        server: FakeOllama, make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = ollama_manifest()
    manager = make_manager(manifest, budget=500 * MiB, settings=load_settings())
    await answer(manager, request(manifest, "first"))
    await answer(manager, request(manifest, "first_again"))  # same base: no second load
    assert manager.loads == {"one": 1}
    assert manager.used_bytes == sized_ggufs["alpha"].stat().st_size, "Ollama's own ps figure"
    manager.budget = manager.used_bytes + MiB  # room for one model
    await answer(manager, request(manifest, "second"))
    assert loaded_on(server) == {"two:latest"}, "evicted through keep_alive 0"
    assert [s.model_id for s in manager.status()] == ["two"]
    assert manager.used_bytes <= manager.budget


async def test_a_model_ollama_dropped_on_its_own_leaves_the_books(
        server: FakeOllama, make_manager: ManagerFactory) -> None:
    manifest = ollama_manifest()
    manager = make_manager(manifest, budget=500 * MiB, settings=load_settings())
    await manager.ensure_loaded(manifest.model("one"))
    assert manager.used_bytes > 0
    other = ollama.AsyncClient(host=server.url)  # someone else, or Ollama's own limits
    await other.generate(model="one", prompt="", keep_alive=0)
    await other.close()
    assert await manager.ps() == []
    assert manager.used_bytes == 0 and manager.evictions["dropped by server"] == 1


async def test_keep_alive_reaches_ollama_and_unloads_idle_models(
        server: FakeOllama, make_manager: ManagerFactory) -> None:
    manifest = ollama_manifest(keep_alive=3600)
    clock = ManualClock()
    manager = make_manager(manifest, budget=500 * MiB, settings=load_settings(), clock=clock)
    await manager.ensure_loaded(manifest.model("one"))
    [held] = server.ps()["models"]
    expires = datetime.fromisoformat(held["expires_at"]) - datetime.now(UTC)
    assert held["name"] == "one:latest" and 3590 < expires.total_seconds() <= 3600, \
        "Ollama was told"
    clock.advance(3600)
    await until(manager, lambda: not manager.is_loaded("one"), seconds=10)
    assert loaded_on(server) == set()


async def test_a_measured_ollama_model_is_reserved_before_its_next_load(
        server: FakeOllama, make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = ollama_manifest()
    first = make_manager(manifest, budget=500 * MiB, settings=load_settings())
    await first.ensure_loaded(manifest.model("one"))
    await first.unload(manifest.model("one"))
    later = make_manager(manifest, budget=500 * MiB, settings=load_settings())
    assert await later.estimate(manifest.model("one")) == sized_ggufs["alpha"].stat().st_size
