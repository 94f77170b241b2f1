"""What an agent is, and where agents come from: `config.yaml` and `@mirador.agent` classes.

    import mirador

    @mirador.agent
    class Morning:
        trigger = "daily 08:00"
        prompt = "Three things worth doing today, one line each."

A class may instead define `async def run(self, context)`: it asks through
`context.ask(prompt)` (an answer like any other) and returns the text to notify.
An agent may set `when = Condition(tool=..., op=">", value=...)` to run only when a
tool's numeric result crosses a threshold; the prompt may use `{value}`.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mirador.agents.triggers import Condition, Daily, Every, parse_trigger
from mirador.errors import ConfigError
from mirador.settings import AgentConfig, Settings

if TYPE_CHECKING:
    from mirador.orchestration.events import Done

NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


class Context(Protocol):
    """What a custom `run` gets: `ask` answers a prompt through the orchestrator."""

    async def ask(self, prompt: str) -> Done: ...


Runner = Callable[[Context], Awaitable["str | Done"]]


@dataclass(frozen=True)
class Agent:
    """A declared agent: what it asks (or runs), when, and where it was declared."""

    name: str
    trigger: Every | Daily
    prompt: str = ""
    run: Runner | None = None
    when: Condition | None = None
    chain: str | None = None
    description: str = ""
    source: str = "config"

    def prompt_for(self, value: float | None) -> str:
        """The prompt, with `{value}` replaced by the condition's value when there is one."""
        shown = "" if value is None else f"{value:g}"
        return self.prompt.replace("{value}", shown)


_lock = threading.Lock()
_declared: dict[str, Agent] = {}  # filled by @mirador.agent at import, like llm's plugins


def agent(cls: type | None = None, *, name: str | None = None) -> Any:
    """Declare an agent class (`@mirador.agent` or `@mirador.agent(name="x")`)."""
    def register(target: type) -> type:
        declared = from_class(target, name)
        with _lock:
            _declared[declared.name] = declared
        return target
    return register(cls) if cls is not None else register


def from_class(cls: type, name: str | None = None) -> Agent:
    """The Agent a decorated class describes; ConfigError naming what is missing."""
    label = name or cls.__name__
    if not NAME.match(label):
        raise ConfigError(f"agent name '{label}' must be 1 to 48 letters, digits, - or _; "
                          "pass @mirador.agent(name=...)")
    trigger = getattr(cls, "trigger", None)
    if not isinstance(trigger, str):
        raise ConfigError(f"agent '{label}' has no trigger; set trigger = 'daily HH:MM' or "
                          "'every 30m' on the class")
    run = getattr(cls, "run", None)
    prompt = getattr(cls, "prompt", "")
    if run is None and not (isinstance(prompt, str) and prompt.strip()):
        raise ConfigError(f"agent '{label}' has neither a prompt nor a run method; give it "
                          "prompt = '...' or async def run(self, context)")
    if run is not None and not inspect.iscoroutinefunction(run):
        raise ConfigError(f"agent '{label}': run must be 'async def run(self, context)'")
    instance = cls()
    return Agent(name=label, trigger=parse_trigger(trigger, label), prompt=prompt or "",
                 run=instance.run if run is not None else None,
                 when=getattr(cls, "when", None), chain=getattr(cls, "chain", None),
                 description=(inspect.getdoc(cls) or "").split("\n")[0], source="python")


def from_config(entry: AgentConfig) -> Agent:
    """The Agent a `config.yaml` entry describes."""
    when = None
    if entry.when is not None:
        when = Condition(tool=entry.when.tool, value=entry.when.value, op=entry.when.op,
                         args=dict(entry.when.args))
    return Agent(name=entry.name, trigger=parse_trigger(entry.trigger, entry.name),
                 prompt=entry.prompt, when=when, chain=entry.chain,
                 description=entry.description)


def declared_agents(settings: Settings) -> list[Agent]:
    """Every agent: `config.yaml`'s, then decorated classes' (plugins are imported first).

    Two agents with one name are a ConfigError: a run's notifications must say whose."""
    from mirador import plugins

    plugins.load()
    agents = [from_config(entry) for entry in settings.config.agents]
    with _lock:
        agents += list(_declared.values())
    seen: set[str] = set()
    for found in agents:
        if found.name in seen:
            raise ConfigError(f"two agents are named '{found.name}'; rename one (in "
                              "config.yaml's agents or with @mirador.agent(name=...))")
        seen.add(found.name)
    return agents


def forget_declared(name: str) -> None:
    """Drop a decorated agent (for tests that declare their own)."""
    with _lock:
        _declared.pop(name, None)
