"""Triggers (`every 30m`, `daily 08:00`) and conditions on a tool's numeric result."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from mirador.agents import Condition, Daily, Every, parse_trigger
from mirador.errors import ConfigError
from mirador.toolspec import Tool, ToolError, ToolResult


def test_every_counts_from_the_moment_given() -> None:
    assert parse_trigger("every 30m") == Every(1800)
    assert parse_trigger("Every  2h") == Every(7200)
    assert parse_trigger("every 1d").next_after(100.0) == 100.0 + 86400
    assert str(parse_trigger("every 90m")) == "every 90m" and str(Every(7200)) == "every 2h"


def test_daily_is_the_next_local_hh_mm() -> None:
    trigger = parse_trigger("daily 08:00")
    assert trigger == Daily(8, 0) and str(trigger) == "daily 08:00"
    before = datetime(2026, 11, 27, 7, 59).timestamp()
    assert trigger.next_after(before) == datetime(2026, 11, 27, 8, 0).timestamp()
    at = datetime(2026, 11, 27, 8, 0).timestamp()
    assert trigger.next_after(at) == datetime(2026, 11, 28, 8, 0).timestamp(), "strictly after"
    late = datetime(2026, 12, 31, 23, 30).timestamp()
    assert trigger.next_after(late) == datetime(2027, 1, 1, 8, 0).timestamp()


@pytest.mark.parametrize("text", ["every 30", "every 5s", "daily 24:00", "daily 8", "hourly",
                                  "every -3m", "daily 07:60"])
def test_a_trigger_not_understood_says_what_is(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_trigger(text, "morning")
    assert "morning" in str(caught.value) and text in str(caught.value)
    assert "shortest" in str(caught.value) or "'daily HH:MM'" in str(caught.value)


def gauge(value: Any, ok: bool = True) -> Tool:
    """A real tool whose result is `value` (its text, and its data)."""
    async def call(args: dict[str, Any]) -> ToolResult:
        return ToolResult(text=str(value), ok=ok, data=value if ok else None)
    return Tool(name="gauge", description="A reading.", parameters={"type": "object"},
                call=call, source="test")


async def test_a_condition_compares_the_tools_number() -> None:
    assert (await Condition(tool=gauge(12.5), op=">", value=10).check({})).met
    low = await Condition(tool=gauge(7), op=">", value=10).check({})
    assert not low.met and low.value == 7 and "7 > 10 does not hold" in low.summary
    by_name = Condition(tool="gauge", op="<=", value=7)
    assert (await by_name.check({"gauge": gauge("7\n")})).met, "a number as text counts"


async def test_a_condition_that_cannot_be_checked_says_why() -> None:
    with pytest.raises(ToolError, match="not registered.*known: gauge"):
        await Condition(tool="weather", value=1).check({"gauge": gauge(1)})
    with pytest.raises(ToolError, match="not a number"):
        await Condition(tool=gauge("sunny"), value=1).check({})
    with pytest.raises(ToolError, match="failed: broken"):
        await Condition(tool=gauge("broken", ok=False), value=1).check({})
    with pytest.raises(ConfigError, match="operator"):
        Condition(tool="gauge", op="~", value=1)
