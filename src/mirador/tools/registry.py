"""The tool registry: built-ins, `@mirador.tool` functions, plugins' tools, sandbox and MCP.

Tools are looked up by name, the way backends are. Built-ins that need the
settings (memory, documents) come from factories called with them; plugins add
tools through the `register_tools` hook (see `mirador.plugins`), loaded the
first time the registry is asked. `available(settings)` is every tool by name;
`check_manifest(manifest, tools)` refuses a persona that names an unknown one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from mirador import plugins
from mirador.errors import ConfigError
from mirador.toolspec import Tool

if TYPE_CHECKING:
    from mirador.catalog.manifest import Manifest
    from mirador.settings import Settings

log = logging.getLogger("mirador.tools")

ToolFactory = Callable[["Settings"], list[Tool]]

# Factories of tools that need the settings, as "module:function" (imported when asked).
_FACTORIES: tuple[str, ...] = ("mirador.tools.builtins:builtin_tools",)
# Helpers' tool families, called when their module is installed (sandbox, MCP).
_OPTIONAL: tuple[tuple[str, str, bool], ...] = (
    ("mirador.tools.sandbox", "sandbox_tools", True),
    ("mirador.tools.mcp_client", "mcp_tools", True),
)


class ToolRegistry:
    """Tool names to tools: what was registered, plus the built-ins made per settings."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._plugins_loaded = False
        self._lock = threading.RLock()

    def register(self, tool: Any) -> None:
        """Add `tool` (a `Tool`, or a function, made one by `make_tool`)."""
        if not isinstance(tool, Tool):
            if not callable(tool):
                raise ConfigError(f"register_tools got {tool!r}; pass a mirador.toolspec.Tool "
                                  "or a function decorated with @mirador.tool")
            from mirador.tools.decorator import make_tool

            tool = make_tool(tool, source="plugin")
        self._tools[tool.name] = tool

    def unregister(self, name: str) -> None:
        self._tools.pop(name, None)

    def registered(self) -> dict[str, Tool]:
        """The tools registered by code and plugins (not the built-ins made per settings)."""
        with self._lock:
            if not self._plugins_loaded:
                self._plugins_loaded = True  # first: a failing plugin is reported once
                plugins.call("register_tools", self.register, _describe)
        return dict(self._tools)

    def available(self, settings: Settings) -> dict[str, Tool]:
        """Every tool by name: built-ins first, then the sandbox's and MCP's, then registered
        ones (a registered tool with a built-in's name replaces it)."""
        tools: dict[str, Tool] = {}
        for factory in _factories():
            tools.update({t.name: t for t in factory(settings)})
        for module, function, wants_settings in _OPTIONAL:
            tools.update({t.name: t for t in _optional(module, function, wants_settings,
                                                       settings)})
        tools.update(self.registered())
        return tools


registry = ToolRegistry()


def available_tools(settings: Settings) -> dict[str, Tool]:
    """Every tool Mirador knows, by name."""
    return registry.available(settings)


def check_manifest(manifest: Manifest, tools: dict[str, Tool]) -> None:
    """A ConfigError naming each persona's unknown tools and the available ones."""
    problems = [f"persona '{p.id}' names tool '{name}', which does not exist"
                for p in manifest.personas for name in p.tools if name not in tools]
    if problems:
        raise ConfigError(f"{'; '.join(problems)} (available: {', '.join(sorted(tools))}); fix "
                          "'tools:' in ~/.mirador/manifest.yaml ('mirador tools' lists them)")


def _factories() -> list[ToolFactory]:
    found = []
    for ref in _FACTORIES:
        module, _, attr = ref.partition(":")
        found.append(getattr(import_module(module), attr))
    return found


def _optional(module: str, function: str, wants_settings: bool, settings: Settings
              ) -> list[Tool]:
    if find_spec(module) is None:
        return []  # not part of this build
    maker = getattr(import_module(module), function)
    made: list[Tool] = maker(settings) if wants_settings else maker()
    return made


def _describe(tool: Any) -> str:
    return tool.name if isinstance(tool, Tool) else getattr(tool, "__name__", repr(tool))
