"""Backends: the runtimes that run models, looked up by name in a registry.

Built-ins register here the same way a plugin would, by name and a factory
that takes the settings. Factories import their runtime library lazily, so
importing this package stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from mirador.backends.base import (
    Backend,
    BackendEvent,
    Capabilities,
    ChatRequest,
    Embedded,
    Embeds,
    EstimatesMemory,
    Finished,
    HostsAdapters,
    LoadedModel,
    Message,
    ResponseFormat,
    SizesContext,
    TakesTurns,
    TextPiece,
    Tokenizes,
    adapters_of,
    capability_problems,
    check_capabilities,
    context_sizer_of,
    embedder_of,
    memory_estimator_of,
    token_counter_of,
    turns_of,
)
from mirador.errors import ConfigError
from mirador.settings import Settings

__all__ = [
    "Backend", "BackendEvent", "ChatRequest", "Embedded", "Embeds", "Finished", "LoadedModel",
    "Message", "ResponseFormat", "TextPiece",
    "Capabilities", "Tokenizes", "EstimatesMemory", "HostsAdapters", "SizesContext",
    "TakesTurns", "adapters_of", "capability_problems", "check_capabilities",
    "context_sizer_of", "embedder_of", "memory_estimator_of", "token_counter_of", "turns_of",
    "BackendFactory", "register_backend", "create_backend", "backend_names",
]

BackendFactory = Callable[[Settings], Backend]

_BUILTINS = {
    "llamacpp": "mirador.backends.llamacpp:LlamaCppBackend",
    "ollama": "mirador.backends.ollama:OllamaBackend",
    "openai": "mirador.backends.openai_compat:OpenAIBackend",
}


class BackendRegistry:
    """Backend names to factories; built-ins are imported only when first used."""

    def __init__(self) -> None:
        self._factories: dict[str, BackendFactory] = {}

    def register(self, name: str, factory: BackendFactory) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(set(self._factories) | set(_BUILTINS))

    def create(self, name: str, settings: Settings) -> Backend:
        factory = self._factories.get(name)
        if factory is None and name in _BUILTINS:
            module, _, attr = _BUILTINS[name].partition(":")
            factory = getattr(import_module(module), attr)
        if factory is None:
            raise ConfigError(f"unknown backend '{name}' (known: {', '.join(self.names())}); "
                              "fix 'backend' in the manifest")
        return factory(settings)


registry = BackendRegistry()


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available under `name` (plugins call this too)."""
    registry.register(name, factory)


def create_backend(name: str, settings: Settings) -> Backend:
    return registry.create(name, settings)


def backend_names() -> list[str]:
    return registry.names()
