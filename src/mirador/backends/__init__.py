"""Backends: the runtimes that run models, looked up by name in a registry.

Each backend is declared once by a `BackendSpec`: its name, a factory that
takes the settings, its `config.yaml` section (`backends.NAME`, a pydantic
model), the reference syntax that names one of its models without a manifest
entry (`ollama:TAG`, a path ending in `.gguf`) and the manifest fields one of
which its models must set. Built-ins are declared here; plugins declare theirs
through the `register_backends` hook (see `mirador.plugins`), loaded the first
time the registry is asked. Factories given as "module:attr" are imported only
when first used, so importing this package stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mirador import plugins
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
    ToolCallRequest,
    adapters_of,
    capability_problems,
    check_capabilities,
    context_sizer_of,
    embedder_of,
    memory_estimator_of,
    token_counter_of,
    turns_of,
)
from mirador.catalog.manifest import ModelEntry
from mirador.errors import ConfigError
from mirador.settings import LlamaCppConfig, OllamaConfig, OpenAIConfig, Settings

__all__ = [
    "Backend", "BackendEvent", "ChatRequest", "Embedded", "Embeds", "Finished", "LoadedModel",
    "Message", "ResponseFormat", "TextPiece", "ToolCallRequest",
    "BackendFactory", "BackendSpec", "register_backend", "create_backend", "backend_names",
    "backend_spec",
    "backend_config", "entry_for_reference", "entry_problem", "check_backend_config",
    "Capabilities", "Tokenizes", "EstimatesMemory", "HostsAdapters", "SizesContext",
    "TakesTurns", "adapters_of", "capability_problems", "check_capabilities",
    "context_sizer_of", "embedder_of", "memory_estimator_of", "token_counter_of", "turns_of",
]

BackendFactory = Callable[[Settings], Backend]


@dataclass(frozen=True)
class BackendSpec:
    """Everything Mirador needs to know about a backend, declared in one place."""

    name: str
    factory: BackendFactory | str  # or "module:attr", imported on first use
    config: type[BaseModel] | None = None  # the `backends.NAME` section of config.yaml
    prefix: str | None = None  # `PREFIX:NAME` is this backend's model NAME
    suffix: str | None = None  # a path ending in SUFFIX is a model file for this backend
    needs: tuple[str, ...] = ()  # manifest fields a model entry must set one of
    needs_hint: str = ""  # how to say what `needs` asks, in an error

    def build(self, settings: Settings) -> Backend:
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(import_module(module), attr)
        assert callable(factory)
        return factory(settings)

    def entry_for(self, ref: str) -> ModelEntry | None:
        """The model entry `ref` names in this backend's syntax, or None."""
        if self.prefix and ref.startswith(f"{self.prefix}:") and len(ref) > len(self.prefix) + 1:
            return ModelEntry(id=ref, backend=self.name, name=ref[len(self.prefix) + 1:])
        if self.suffix and ref.endswith(self.suffix):
            return ModelEntry(id=Path(ref).stem, backend=self.name, path=ref)
        return None


_BUILTINS = (
    BackendSpec("llamacpp", "mirador.backends.llamacpp:LlamaCppBackend", LlamaCppConfig,
                suffix=".gguf", needs=("path", "package"),
                needs_hint="a 'path' to a GGUF file or a 'package' that ships one"),
    BackendSpec("ollama", "mirador.backends.ollama:OllamaBackend", OllamaConfig,
                prefix="ollama", needs=("name",), needs_hint="the 'name' that server knows it by"),
    BackendSpec("openai", "mirador.backends.openai_compat:OpenAIBackend", OpenAIConfig,
                prefix="openai", needs=("name",), needs_hint="the 'name' that server knows it by"),
)


class BackendRegistry:
    """Backend names to specs: the built-ins, then whatever plugins register."""

    def __init__(self) -> None:
        self._specs: dict[str, BackendSpec] = {spec.name: spec for spec in _BUILTINS}
        self._plugins_loaded = False
        self._lock = threading.RLock()

    def register(self, spec: BackendSpec) -> None:
        if not isinstance(spec, BackendSpec):
            raise ConfigError(f"register_backends got {spec!r}; pass a "
                              "mirador.backends.BackendSpec")
        self._specs[spec.name] = spec

    def _specs_with_plugins(self) -> dict[str, BackendSpec]:
        with self._lock:
            if not self._plugins_loaded:
                self._plugins_loaded = True  # set first: a failing plugin is reported once
                plugins.call("register_backends", self.register, lambda spec: spec.name)
        return self._specs

    def names(self) -> list[str]:
        return sorted(self._specs_with_plugins())

    def spec(self, name: str) -> BackendSpec:
        spec = self._specs_with_plugins().get(name)
        if spec is None:
            raise ConfigError(f"unknown backend '{name}' (known: {', '.join(self.names())}); "
                              "fix 'backend' in the manifest, or install the plugin that "
                              "provides it ('mirador plugins' lists them)")
        return spec

    def create(self, name: str, settings: Settings) -> Backend:
        check_backend_config(settings)
        return self.spec(name).build(settings)

    def specs(self) -> list[BackendSpec]:
        return list(self._specs_with_plugins().values())


registry = BackendRegistry()


def register_backend(name: str, factory: BackendFactory, **declared: Any) -> None:
    """Make a backend available under `name`; `declared` are further `BackendSpec` fields."""
    registry.register(BackendSpec(name, factory, **declared))


def create_backend(name: str, settings: Settings) -> Backend:
    return registry.create(name, settings)


def backend_names() -> list[str]:
    return registry.names()


def backend_spec(name: str) -> BackendSpec:
    """What backend `name` declared (a ConfigError naming the known ones if none)."""
    return registry.spec(name)


def backend_config(name: str, settings: Settings) -> BaseModel | None:
    """The validated `backends.NAME` section of config.yaml (its defaults when absent)."""
    spec = registry.spec(name)
    raw = settings.config.backends.section(name)
    if spec.config is None:
        if raw:
            raise ConfigError(f"config.yaml: backends.{name}: backend '{name}' takes no "
                              "settings; remove the section")
        return None
    if isinstance(raw, spec.config):
        return raw
    try:
        return spec.config.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError("; ".join(_config_problem(name, e) for e in exc.errors())) from None


def _config_problem(name: str, error: Any) -> str:
    where = ".".join(["backends", name, *(str(p) for p in error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"config.yaml: {where}: unknown field; remove it or check its spelling"
    return f"config.yaml: {where}: {error['msg']}"


def check_backend_config(settings: Settings) -> None:
    """Every plugin section under `backends:` claimed by a backend and valid, or a ConfigError."""
    known = {spec.name for spec in registry.specs()}
    for name in settings.config.backends.plugin_sections():
        if name not in known:
            raise ConfigError(f"config.yaml: backends.{name}: no backend named '{name}' "
                              f"(known: {', '.join(sorted(known))}); fix the name, or install "
                              "the plugin that provides it ('mirador plugins' lists them)")
        backend_config(name, settings)


def entry_for_reference(ref: str) -> ModelEntry | None:
    """The model `ref` names in some backend's syntax (`ollama:TAG`, `x.gguf`), or None."""
    for spec in registry.specs():
        entry = spec.entry_for(ref)
        if entry is not None:
            return entry
    return None


def entry_problem(entry: ModelEntry) -> str | None:
    """What a manifest model entry lacks for its backend to run it; None when nothing."""
    spec = registry.spec(entry.backend)
    if spec.needs and not any(getattr(entry, field) for field in spec.needs):
        return f"model '{entry.id}' runs on {spec.name}: give it {spec.needs_hint}"
    return None
