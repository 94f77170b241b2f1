"""The tool call loop: calls validated and run, errors shown to the model, rounds bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mirador.backends import ToolCallRequest
from mirador.backends.scripted import Script, ScriptedBackend
from mirador.orchestration.events import Done, ToolCall, ToolResult
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings
from mirador.tools.builtins import builtin_tools
from mirador.tools.decorator import make_tool

CALC = [ModelStage("calc", "calculator", 0.6, timeout=30)]


def call(name: str, **arguments: object) -> ToolCallRequest:
    return ToolCallRequest(name=name, arguments=dict(arguments))


@pytest.fixture
async def scripted(settings: Settings) -> AsyncIterator[tuple[Orchestrator, ScriptedBackend]]:
    backend = ScriptedBackend()
    orchestrator = Orchestrator(settings)
    orchestrator.tools = {t.name: t for t in builtin_tools(settings)}
    orchestrator.manager.use_backend("llamacpp", backend)
    yield orchestrator, backend
    await orchestrator.aclose()


async def events_of(orchestrator: Orchestrator, query: str) -> list[object]:
    return [e async for e in orchestrator.process(query, stages=CALC)]


async def test_a_call_runs_and_its_result_reaches_the_model(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=[], calls=(call("calculate", expression="6*7"),)),
                    Script(pieces=["It is ", "42."]))
    events = await events_of(orchestrator, "What is 6 times 7?")
    [asked] = [e for e in events if isinstance(e, ToolCall)]
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert (asked.tool, asked.arguments, asked.round) == ("calculate", {"expression": "6*7"}, 1)
    assert result.ok and result.text == "6*7 = 42"
    assert events[-1].answer == "It is 42."  # type: ignore[attr-defined]
    first, second = backend.requests
    assert [t.name for t in first.tools] == ["calculate"]
    assert second.messages[-2].tool_calls == (call("calculate", expression="6*7"),)
    assert (second.messages[-1].role, second.messages[-1].content) == ("tool", "6*7 = 42")


@pytest.mark.parametrize(("bad", "says"), [
    (call("summon", spell="x"), "there is no tool 'summon' (available: calculate)"),
    (call("calculate", expr="1+1"), "'expression' is a required property"),
    (call("calculate", expression=7), "7 is not of type 'string'"),
    (call("calculate", expression="os.system('ls')"), "does not match"),
])
async def test_a_bad_call_is_shown_to_the_model_as_an_error(
        scripted: tuple[Orchestrator, ScriptedBackend], bad: ToolCallRequest, says: str) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=[], calls=(bad,)), Script(pieces=["Sorry."]))
    events = await events_of(orchestrator, "What is 1 plus 1?")
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert not result.ok and says in result.text
    assert says in backend.requests[1].messages[-1].content
    assert isinstance(events[-1], Done) and events[-1].status == "ok"


async def test_rounds_are_bounded_then_the_model_must_answer(
        scripted: tuple[Orchestrator, ScriptedBackend], settings: Settings) -> None:
    orchestrator, backend = scripted
    orchestrator.settings.config.tools.max_rounds = 2  # type: ignore[misc]
    again = Script(pieces=[], calls=(call("calculate", expression="1+1"),))
    backend.enqueue(again, again, Script(pieces=["Two."]))
    events = await events_of(orchestrator, "What is 1 plus 1?")
    assert [e.round for e in events if isinstance(e, ToolCall)] == [1, 2]
    assert [bool(r.tools) for r in backend.requests] == [True, True, False]
    assert events[-1].answer == "Two."  # type: ignore[attr-defined]


async def test_a_slow_tool_is_stopped_at_its_timeout(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted

    async def nap(seconds: float) -> str:
        """Sleep."""
        await asyncio.sleep(seconds)
        return "rested"

    orchestrator.tools["calculate"] = make_tool(nap, name="calculate", timeout=0.2)
    backend.enqueue(Script(pieces=[], calls=(call("calculate", seconds=30),)),
                    Script(pieces=["Tired."]))
    events = await events_of(orchestrator, "What is 1 plus 1?")
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert not result.ok and "longer than 0.2 s" in result.text and result.seconds < 5


async def test_a_tool_that_crashes_is_reported_not_raised(
        scripted: tuple[Orchestrator, ScriptedBackend], caplog: pytest.LogCaptureFixture) -> None:
    orchestrator, backend = scripted

    def broken(expression: str) -> str:
        """Fails."""
        raise KeyError(expression)

    orchestrator.tools["calculate"] = make_tool(broken, name="calculate")
    backend.enqueue(Script(pieces=[], calls=(call("calculate", expression="1"),)),
                    Script(pieces=["Hm."]))
    events = await events_of(orchestrator, "What is 1 plus 1?")
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert not result.ok and "calculate failed: KeyError" in result.text
    assert "tool calculate (user) failed" in caplog.text


async def test_a_persona_whose_tools_are_missing_fails_its_stage_clearly(
        settings: Settings) -> None:
    orchestrator = Orchestrator(settings)  # no tools given: not built by create_orchestrator
    orchestrator.manager.use_backend("llamacpp", ScriptedBackend())
    events = await events_of(orchestrator, "What is 1 plus 1?")
    assert "uses tool(s) calculate, which this orchestrator lacks" in events[-1].error  # type: ignore[attr-defined,operator]
    await orchestrator.aclose()


def test_tool_events_travel_as_dicts_and_back() -> None:
    from mirador.server.client import event_from_dict

    for event in (ToolCall(stage="s", model="m", tool="calculate", arguments={"expression": "1"}),
                  ToolResult(stage="s", tool="calculate", ok=False, text="no", seconds=0.1)):
        assert event_from_dict(event.to_dict()) == event
