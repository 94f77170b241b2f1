"""When an agent runs: a schedule (`daily 08:00`, `every 30m`) and, optionally, a condition
on a tool's numeric result (`calculate` above a threshold, say)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from mirador.errors import ConfigError
from mirador.toolspec import Tool, ToolError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"^every\s+(\d+)\s*([smhd])$")
_DAILY = re.compile(r"^daily\s+(\d{1,2}):(\d{2})$")
MIN_PERIOD = 10  # seconds: a shorter schedule would keep the model busy for nothing


class Trigger(Protocol):
    """A schedule: the first moment strictly after `moment` when the agent is due."""

    def next_after(self, moment: float) -> float: ...


@dataclass(frozen=True)
class Every:
    """Every `seconds`, counted from the last run (or from when the agent was enabled)."""

    seconds: int

    def next_after(self, moment: float) -> float:
        return moment + self.seconds

    def __str__(self) -> str:
        for unit, size in sorted(UNITS.items(), key=lambda u: -u[1]):
            if self.seconds % size == 0:
                return f"every {self.seconds // size}{unit}"
        return f"every {self.seconds}s"  # pragma: no cover (s divides everything)


@dataclass(frozen=True)
class Daily:
    """Once a day at HH:MM, local time."""

    hour: int
    minute: int

    def next_after(self, moment: float) -> float:
        start = datetime.fromtimestamp(moment).astimezone()
        due = start.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if due.timestamp() <= moment:
            due = (due + timedelta(days=1)).replace(hour=self.hour, minute=self.minute)
        return due.timestamp()

    def __str__(self) -> str:
        return f"daily {self.hour:02d}:{self.minute:02d}"


def parse_trigger(text: str, agent: str = "?") -> Every | Daily:
    """`daily HH:MM` or `every N{s,m,h,d}`; ConfigError saying what is accepted otherwise."""
    spec = " ".join(text.lower().split())
    if match := _EVERY.match(spec):
        seconds = int(match[1]) * UNITS[match[2]]
        if seconds < MIN_PERIOD:
            raise ConfigError(f"agent '{agent}': trigger '{text}' is too often; the shortest "
                              f"is every {MIN_PERIOD}s")
        return Every(seconds)
    if (match := _DAILY.match(spec)) and int(match[1]) < 24 and int(match[2]) < 60:
        return Daily(int(match[1]), int(match[2]))
    raise ConfigError(f"agent '{agent}': trigger '{text}' is not understood; write "
                      "'daily HH:MM' (24-hour, local time) or 'every N' with a unit s, m, h "
                      "or d (e.g. 'every 30m')")


COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class Checked:
    """What a condition found: the tool's value and whether the comparison held."""

    value: float
    met: bool
    summary: str


@dataclass(frozen=True)
class Condition:
    """Run only when `tool(args)` gives a number that compares true with `value`.

    `tool` is a tool's name (looked up among the tools the runner has) or a `Tool`."""

    tool: str | Tool
    value: float
    op: str = ">"
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in COMPARE:
            raise ConfigError(f"condition operator '{self.op}' is not one of "
                              f"{', '.join(COMPARE)}")

    @property
    def tool_name(self) -> str:
        return self.tool if isinstance(self.tool, str) else self.tool.name

    async def check(self, tools: Mapping[str, Tool]) -> Checked:
        """Call the tool and compare; ToolError when it fails or gives no number."""
        result = await self._resolve(tools).call(dict(self.args))
        if not result.ok:
            raise ToolError(f"the condition's tool '{self.tool_name}' failed: {result.text}")
        value = _number(self.tool_name, result.data, result.text)
        met = COMPARE[self.op](value, self.value)
        verb = "holds" if met else "does not hold"
        return Checked(value, met, f"{self.tool_name} gave {value:g}; {value:g} {self.op} "
                                   f"{self.value:g} {verb}")

    def _resolve(self, tools: Mapping[str, Tool]) -> Tool:
        if not isinstance(self.tool, str):
            return self.tool
        if self.tool not in tools:
            known = ", ".join(sorted(tools)) or "none"
            raise ToolError(f"the condition's tool '{self.tool}' is not registered (known: "
                            f"{known}); name one of those in the agent's `when.tool`")
        return tools[self.tool]


def _number(tool: str, data: Any, text: str) -> float:
    for candidate in (data, text.strip()):
        if isinstance(candidate, bool):
            continue
        try:
            return float(candidate)
        except (TypeError, ValueError):
            continue
    raise ToolError(f"the condition's tool '{tool}' gave {text[:80]!r}, not a number; a "
                    "condition needs a tool whose result is a number")
