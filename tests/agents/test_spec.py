"""Where agents come from: `@mirador.agent` classes and config.yaml entries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import mirador
from mirador.agents import Condition, Daily, Every, declared_agents
from mirador.agents.spec import forget_declared
from mirador.errors import ConfigError
from mirador.settings import load_settings


@pytest.fixture
def declared() -> Iterator[list[str]]:
    """Names of agents a test declares, forgotten after it."""
    names: list[str] = []
    yield names
    for name in names:
        forget_declared(name)


def test_a_decorated_class_is_an_agent(isolated_home: Path, declared: list[str]) -> None:
    @mirador.agent
    class Morning:
        """Plans the day."""

        trigger = "daily 07:30"
        prompt = "Three things worth doing today."

    @mirador.agent(name="rates-watch")
    class Rates:
        trigger = "every 1h"
        when = Condition(tool="calculate", op=">=", value=5, args={"expression": "2+3"})

        async def run(self, context: object) -> str:
            return "checked"

    declared += ["Morning", "rates-watch"]
    agents = {a.name: a for a in declared_agents(load_settings())}
    assert agents["Morning"].trigger == Daily(7, 30) and agents["Morning"].run is None
    assert agents["Morning"].description == "Plans the day."
    assert agents["Morning"].source == "python"
    assert agents["rates-watch"].trigger == Every(3600) and agents["rates-watch"].run is not None
    assert agents["rates-watch"].when is not None and agents["rates-watch"].when.value == 5


@pytest.mark.parametrize(("body", "message"), [
    ({}, "has no trigger"),
    ({"trigger": "every 1h"}, "neither a prompt nor a run"),
    ({"trigger": "weekly", "prompt": "x"}, "not understood"),
    ({"trigger": "every 1h", "prompt": "x", "run": lambda self, c: "sync"}, "async def run")])
def test_a_class_missing_something_is_refused(body: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mirador.agent(type("Half", (), body))


def test_config_agents_and_a_name_twice(isolated_home: Path, declared: list[str]) -> None:
    config = {"agents": [{"name": "Morning", "trigger": "every 30m", "prompt": "Hello.",
                          "when": {"tool": "calculate", "args": {"expression": "1+1"},
                                   "op": "<", "value": 3}}]}
    (isolated_home / "config.yaml").write_text(yaml.safe_dump(config))
    [agent] = declared_agents(load_settings())
    assert agent.source == "config" and agent.when == Condition(
        tool="calculate", op="<", value=3, args={"expression": "1+1"})

    @mirador.agent
    class Morning:
        trigger = "daily 08:00"
        prompt = "Hi."

    declared.append("Morning")
    with pytest.raises(ConfigError, match="two agents are named 'Morning'"):
        declared_agents(load_settings())


def test_a_typo_in_a_config_agent_is_a_clear_error(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(yaml.safe_dump(
        {"agents": [{"name": "x", "trigger": "every 1h", "promt": "Hi"}]}))
    with pytest.raises(ConfigError, match="promt"):
        load_settings()
