"""Plugins: packages that add backends, embedders, chains and tools through entry points.

A plugin is an installed distribution with an entry point in the `mirador`
group pointing at a module that implements some of the hooks below, marked
with `mirador.plugins.hookimpl` (the way simonw/llm's plugins work):

    [project.entry-points.mirador]
    echo = "mirador_echo"

    # mirador_echo.py
    from mirador.plugins import hookimpl

    @hookimpl
    def register_backends(register):
        register(BackendSpec(name="echo", factory=EchoBackend, prefix="echo"))

Plugins load once, lazily, the first time a registry is consulted. A plugin
that fails to import or to register raises a `ConfigError` naming it and
saying how to remove it; `mirador plugins` lists them all, broken ones too.
This module sits below everything that registers: it knows hook names, never
the registries, which pass their own `register` callable in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from mirador.errors import ConfigError

GROUP = "mirador"

hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


class HookSpecs:
    """What a plugin may implement; each hook gets a `register` callable."""

    @hookspec
    def register_backends(self, register: Callable[..., None]) -> None:
        """Register backends: `register(BackendSpec(...))` (see `mirador.backends`)."""

    @hookspec
    def register_embedders(self, register: Callable[..., None]) -> None:
        """Register embedders: `register(name, factory)`; factory(settings) -> Embedder."""

    @hookspec
    def register_chains(self, register: Callable[..., None]) -> None:
        """Register chains: `register({"id": ..., "steps": [...], ...})`, a manifest chain."""

    @hookspec
    def register_tools(self, register: Callable[..., None]) -> None:
        """Register tools models may call: `register(tool)`, a `mirador.toolspec.Tool` or a
        function decorated with `@mirador.tool(..., register=False)` (see `mirador.tools`)."""


@dataclass
class PluginInfo:
    """One installed plugin: where it comes from, whether it loaded, what it registered."""

    name: str
    distribution: str
    version: str
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _State:
    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo]


_lock = threading.Lock()
_state: _State | None = None


def load() -> list[PluginInfo]:
    """Import every installed plugin (once); later calls return the same list."""
    global _state
    with _lock:
        if _state is None:
            _state = _load_all()
        return list(_state.plugins.values())


def _load_all() -> _State:
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(HookSpecs)
    plugins: dict[str, PluginInfo] = {}
    for entry in metadata.entry_points(group=GROUP):
        dist = entry.dist
        info = PluginInfo(name=entry.name, distribution=dist.name if dist else "?",
                          version=dist.version if dist else "?")
        plugins[entry.name] = info
        try:
            manager.register(entry.load(), name=entry.name)
        except Exception as exc:  # any failure in foreign code: reported with its name
            info.error = f"{type(exc).__name__}: {exc}"
    return _State(manager=manager, plugins=plugins)


def call(hook: str, register: Callable[..., Any], describe: Callable[..., str]) -> None:
    """Run every plugin's `hook` with `register`; `describe(*args)` names what was added.

    The healthy plugins register first; then a `ConfigError` names the first plugin that
    failed to load or whose hook failed, and says how to remove it.
    """
    load()
    assert _state is not None
    for impl in getattr(_state.manager.hook, hook).get_hookimpls():
        info = _state.plugins[impl.plugin_name]
        if info.error is None:
            _run(impl.function, hook, register, describe, info)
    broken = [info for info in _state.plugins.values() if info.error is not None]
    if broken:
        raise ConfigError(_broken(broken[0]))


def _run(function: Callable[..., Any], hook: str, register: Callable[..., Any],
         describe: Callable[..., str], info: PluginInfo) -> None:
    def recording(*args: Any) -> None:
        register(*args)
        added = info.registered.setdefault(hook, [])
        if describe(*args) not in added:
            added.append(describe(*args))

    try:
        function(register=recording)
    except ConfigError as exc:
        info.error = f"{hook}: {exc}"
    except Exception as exc:  # foreign code: reported with its name, never a traceback
        info.error = f"{hook}: {type(exc).__name__}: {exc}"


def _broken(info: PluginInfo) -> str:
    return (f"plugin '{info.name}' ({info.distribution} {info.version}) is broken: "
            f"{info.error}; fix it, or remove it with 'pip uninstall {info.distribution}'")
