"""`@mirador.tool`, the registry (plugins' tools too) and the manifest's `tools:` lists."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import mirador
from mirador import plugins
from mirador.catalog.manifest import load_manifest
from mirador.errors import ConfigError
from mirador.settings import Settings
from mirador.tools.registry import available_tools, check_manifest, registry
from mirador.toolspec import Tool, ToolError


@pytest.fixture
def forget() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        registry.unregister(name)


def test_a_decorated_function_becomes_a_described_tool(forget: list[str],
                                                       settings: Settings) -> None:
    @mirador.tool("Look up a city's population")
    def population(city: str, year: int = 2024) -> dict[str, int]:
        return {"year": year, "people": len(city) * 1000}

    forget.append("population")
    assert isinstance(population, Tool)
    assert population.description == "Look up a city's population"
    assert population.parameters["required"] == ["city"]
    assert population.parameters["properties"]["year"] == {"default": 2024, "type": "integer"}
    result = asyncio.run(population.call({"city": "Lyon"}))
    assert json.loads(result.text) == {"year": 2024, "people": 4000}
    assert available_tools(settings)["population"] is population


def test_async_functions_and_docstrings(forget: list[str]) -> None:
    @mirador.tool
    async def shout(text: str) -> str:
        """Say it louder.

        More detail the model need not read."""
        return text.upper()

    forget.append("shout")
    assert shout.description == "Say it louder."
    assert asyncio.run(shout.call({"text": "hi"})).text == "HI"


def test_bad_arguments_are_a_tool_error_naming_the_field() -> None:
    @mirador.tool(register=False)
    def double(n: int) -> int:
        """Twice n."""
        return 2 * n

    with pytest.raises(ToolError, match="n: Input should be a valid integer"):
        asyncio.run(double.call({"n": "many"}))
    with pytest.raises(ToolError, match="m: Extra inputs are not permitted"):
        asyncio.run(double.call({"n": 1, "m": 2}))


def test_a_parameter_without_a_type_hint_is_refused() -> None:
    with pytest.raises(ConfigError, match="'x' has no type hint"):
        mirador.tool(register=False)(lambda x: x)


def test_builtins_are_listed(settings: Settings) -> None:
    tools = available_tools(settings)
    assert {"calculate", "search_memory", "search_docs", "read_file"} <= set(tools)
    assert asyncio.run(tools["calculate"].call({"expression": "2+2"})).data == 4


def test_a_plugin_registers_tools_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin:
        @plugins.hookimpl
        def register_tools(self, register):  # type: ignore[no-untyped-def]
            def weather(city: str) -> str:
                """Today's weather."""
                return f"sunny in {city}"

            register(weather)

    state = plugins._load_all()
    state.manager.register(Plugin(), name="weatherplugin")
    state.plugins["weatherplugin"] = plugins.PluginInfo("weatherplugin", "weather", "1.0")
    monkeypatch.setattr(plugins, "_state", state)
    fresh = type(registry)()
    tools = fresh.registered()
    assert tools["weather"].source == "plugin"
    assert state.plugins["weatherplugin"].registered == {"register_tools": ["weather"]}
    assert asyncio.run(tools["weather"].call({"city": "Nice"})).text == "sunny in Nice"


def test_a_persona_naming_an_unknown_tool_is_a_clear_error(tmp_path: Path,
                                                           settings: Settings) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text("personas:\n  - id: helper\n    model: smollm2-135m\n"
                    "    tools: [calculate, summon_dragon]\n")
    manifest = load_manifest(path)
    assert manifest.resolve("helper").tools == ("calculate", "summon_dragon")
    with pytest.raises(ConfigError) as caught:
        check_manifest(manifest, available_tools(settings))
    message = str(caught.value)
    assert "'summon_dragon'" in message and "available: " in message and "calculate" in message
    assert "'calculate'" not in message.split("available")[0]
