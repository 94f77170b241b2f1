"""Agents' fixtures: a real orchestrator on SmolLM2 with short stages, a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from mirador.agents import AgentStore, ManualClock
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings, load_settings

SHORT_STAGES = [{"name": "quick_response", "persona": "quick", "confidence": 0.6,
                 "max_tokens": 8}]


@pytest.fixture
def short_settings(isolated_home: Path) -> Settings:
    (isolated_home / "config.yaml").write_text(yaml.safe_dump({"stages": SHORT_STAGES}))
    return load_settings()


@pytest.fixture
async def orchestrator(short_settings: Settings,
                       llama_backend: LlamaCppBackend) -> AsyncIterator[Orchestrator]:
    """The real default model, one short stage."""
    orchestrator = Orchestrator(short_settings)
    orchestrator.manager.use_backend("llamacpp", llama_backend)
    yield orchestrator
    await orchestrator.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(isolated_home: Path) -> AgentStore:
    return AgentStore(isolated_home)
