"""Tiny GGUFs of known sizes, manifests over them, and managers with small budgets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mirador.catalog.manifest import Manifest
from mirador.models.clock import Clock
from mirador.models.manager import ModelManager
from mirador.settings import ModelsConfig, Settings, load_settings
from tests.support.tiny_gguf import TinySpec, write_tiny_llama

MiB = 1 << 20
SIZED = TinySpec(n_embd=256, n_layer=4, n_ff=1024)  # 17.4 MB of f32 weights


async def room_for_one(manager: ModelManager, model: Any) -> int:
    """A budget that holds `model` alone but not beside what is loaded now: sized from
    both, since a loaded model's measured bytes vary from run to run (a fixed margin over
    them was sometimes less than `model` needs on its own)."""
    need = await manager.estimate(model)
    return max(manager.used_bytes, need) + MiB


@pytest.fixture(scope="session")
def sized_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four tiny models with 17.4 MB of weights each (different seeds, so different files)."""
    folder = tmp_path_factory.mktemp("sized")
    return {name: write_tiny_llama(folder / f"{name}.gguf",
                                   TinySpec(**{**SIZED.__dict__, "seed": seed}))
            for seed, name in enumerate(("alpha", "beta", "gamma", "delta"))}


def manifest_of(models: dict[str, Path] | list[dict[str, Any]],
                personas: list[dict[str, Any]] = (),  # type: ignore[assignment]
                **extra: Any) -> Manifest:
    """A manifest over `models` (id -> GGUF, or full entries) and `personas`."""
    entries = models if isinstance(models, list) else [
        {"id": name, "path": str(path), "context_length": 512} for name, path in models.items()]
    return Manifest.model_validate({"models": entries, "personas": list(personas), **extra})


ManagerFactory = Callable[..., ModelManager]


async def until(manager: ModelManager, condition: Callable[[], bool],
                seconds: float = 30.0) -> None:
    """Wait for the manager's changes (loads, unloads, answers ending) until `condition`
    holds; a real-time limit only so a broken manager fails instead of hanging."""
    async with asyncio.timeout(seconds):
        while not condition():
            await manager.changed()


@pytest.fixture
async def make_manager(isolated_home: Path) -> AsyncIterator[ManagerFactory]:
    """Build managers over a manifest with a budget and model settings; all closed after."""
    made: list[ModelManager] = []

    def make(manifest: Manifest, budget: int, settings: Settings | None = None,
             clock: Clock | None = None, **models: Any) -> ModelManager:
        settings = settings or load_settings(models=ModelsConfig(**models))
        manager = ModelManager(settings, manifest, budget=budget, clock=clock)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.aclose()
