"""Backends declare what they can do; a declaration without the methods is caught at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from mirador.backends import (
    Capabilities,
    ChatRequest,
    LoadedModel,
    adapters_of,
    capability_problems,
    context_sizer_of,
    embedder_of,
    memory_estimator_of,
    token_counter_of,
    turns_of,
)
from mirador.backends.base import prefiller_of
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.backends.ollama import OllamaBackend
from mirador.backends.openai_compat import OpenAIBackend
from mirador.backends.scripted import ScriptedBackend
from mirador.catalog.manifest import Manifest, ModelEntry
from mirador.errors import BackendError
from mirador.models.manager import ModelManager
from mirador.settings import Settings

REMOTE = ModelEntry(id="remote", backend="scripted", name="remote")


@pytest.mark.parametrize("backend_class", [LlamaCppBackend, OllamaBackend, OpenAIBackend])
def test_every_builtin_backend_keeps_what_it_declares(backend_class: Any,
                                                      settings: Settings) -> None:
    backend = backend_class(settings)
    assert capability_problems(backend) == []
    declared = backend.capabilities.declared()
    assert (adapters_of(backend) is not None) == ("adapters" in declared)
    assert (token_counter_of(backend) is not None) == ("counts_tokens" in declared)
    assert (memory_estimator_of(backend) is not None) == ("estimates_memory" in declared)
    assert (embedder_of(backend) is not None) == ("embeds" in declared)
    assert (turns_of(backend) is not None) == ("takes_turns" in declared)
    assert (context_sizer_of(backend) is not None) == ("sizes_context" in declared)
    assert (prefiller_of(backend) is not None) == ("prefills" in declared)


def test_what_each_builtin_declares(settings: Settings) -> None:
    assert LlamaCppBackend(settings).capabilities.declared() == {
        "in_process", "estimates_memory", "counts_tokens", "adapters", "embeds",
        "takes_turns", "sizes_context", "tools", "speculative", "threads", "prefills"}
    assert OllamaBackend(settings).capabilities.declared() == {"embeds", "tools"}
    assert OpenAIBackend(settings).capabilities.declared() == {"embeds", "tools"}
    assert ScriptedBackend().capabilities.declared() == set()


def test_a_backend_declaring_what_it_lacks_is_refused_by_the_manager(
        settings: Settings) -> None:
    liar = ScriptedBackend(capabilities=Capabilities(counts_tokens=True, adapters=True))
    problems = capability_problems(liar)
    assert len(problems) == 2
    assert "declares capability 'adapters' but lacks HostsAdapters's load_adapter" in problems[0]
    assert "'counts_tokens' but lacks Tokenizes's count_tokens" in problems[1]
    manager = ModelManager(settings, Manifest(), budget=1 << 30)
    with pytest.raises(BackendError, match="declare counts_tokens=False"):
        manager.use_backend("scripted", liar)
    with pytest.raises(BackendError, match="'scripted' declares capability 'counts_tokens'"):
        token_counter_of(liar)  # asked without the manager's check: still no silent None


@dataclass
class _Undeclared:
    """A backend with no `capabilities`: a plugin written before they existed."""

    name: str = "old"

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def loaded(self) -> list[LoadedModel]:
        return []


def test_a_backend_without_capabilities_is_told_how_to_declare_them(
        settings: Settings) -> None:
    [problem] = capability_problems(_Undeclared())
    assert "backend 'old' declares no capabilities" in problem
    assert "capabilities = Capabilities(...)" in problem
    manager = ModelManager(settings, Manifest(), budget=1 << 30)
    with pytest.raises(BackendError, match="declares no capabilities"):
        manager.use_backend("old", _Undeclared())  # type: ignore[arg-type]


class _CountsButSaysNot(ScriptedBackend):
    async def count_tokens(self, model: ModelEntry, text: str) -> int:
        raise AssertionError("an undeclared capability must not be used")


async def test_an_undeclared_capability_is_never_probed(settings: Settings) -> None:
    manager = ModelManager(settings, Manifest(), budget=1 << 30)
    manager.use_backend("scripted", _CountsButSaysNot())
    assert await manager.count_tokens(REMOTE, "abcdefgh") == 2  # the four-characters estimate
    await manager.aclose()
