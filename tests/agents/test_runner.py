"""The runner on a manual clock, answering with the real default model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mirador.agents import Agent, AgentStore, Condition, Every, ManualClock, parse_trigger
from mirador.agents.runner import AgentRunner, orchestrator_ask
from mirador.orchestration.orchestrator import Orchestrator
from tests.agents.test_triggers import gauge

HALF_HOUR = 1800


def watcher(**fields: Any) -> Agent:
    return Agent(**{"name": "watcher", "trigger": parse_trigger("every 30m"),
                    "prompt": "Name one colour.", **fields})


def runner_for(orchestrator: Orchestrator, store: AgentStore, clock: ManualClock,
               *agents: Agent) -> AgentRunner:
    return AgentRunner(agents, store, orchestrator_ask(orchestrator), clock, poll=60)


async def test_an_enabled_agent_runs_when_due_and_notifies(
        orchestrator: Orchestrator, store: AgentStore, clock: ManualClock) -> None:
    runner = runner_for(orchestrator, store, clock, watcher())
    assert await runner.tick() == [], "disabled until the person enables it"
    store.enable("watcher", clock.now())
    clock.advance(HALF_HOUR - 1)
    assert await runner.tick() == [], "not due before its period"
    clock.advance(1)
    [record] = await runner.tick()
    assert record.did == "answered" and record.answer_id and record.trigger == "every 30m"
    [note] = store.notifications()
    assert note.agent == "watcher" and note.text.strip() and note.status in ("ok", "partial")
    assert note.answer_id == record.answer_id and note.at == clock.now()
    assert await runner.tick() == [], "ran: next due in another half hour"
    assert store.runs()[0] == record, "every run is logged"
    assert record.details["prompt"] == "Name one colour."


async def test_a_condition_that_does_not_hold_skips_and_logs_why(
        orchestrator: Orchestrator, store: AgentStore, clock: ManualClock) -> None:
    low, high = watcher(name="low", when=Condition(tool="gauge", op=">", value=10)), \
        watcher(name="high", prompt="The reading is {value}. Say it back.",
                when=Condition(tool=gauge(42), op=">", value=10))
    runner = AgentRunner([low, high], store, orchestrator_ask(orchestrator), clock,
                         tools={"gauge": gauge(3)})
    for name in ("low", "high"):
        store.enable(name, clock.now())
    clock.advance(HALF_HOUR)
    records = {r.agent: r for r in await runner.tick()}
    assert records["low"].did == "skipped" and "3 > 10 does not hold" in (
        records["low"].condition or "")
    assert records["high"].did == "answered"
    assert records["high"].details["prompt"] == "The reading is 42. Say it back."
    assert [n.agent for n in store.notifications()] == ["high"]
    assert "42 > 10 holds" in (store.notifications()[0].condition or "")


async def test_a_failing_agent_is_logged_and_the_others_still_run(
        orchestrator: Orchestrator, store: AgentStore, clock: ManualClock) -> None:
    class Broken:
        async def run(self, context: Any) -> str:
            raise RuntimeError("the sensor is unplugged")

    broken = watcher(name="broken", run=Broken().run)
    unknown = watcher(name="unknown", when=Condition(tool="weather", value=1))
    fine = watcher(name="fine")
    runner = runner_for(orchestrator, store, clock, broken, unknown, fine)
    for agent in (broken, unknown, fine):
        store.enable(agent.name, clock.now())
    clock.advance(HALF_HOUR)
    records = {r.agent: r for r in await runner.tick()}
    assert records["broken"].did == "failed"
    assert "RuntimeError: the sensor is unplugged" in (records["broken"].error or "")
    assert records["unknown"].did == "failed" and "not registered" in (
        records["unknown"].error or "")
    assert records["fine"].did == "answered"
    assert [n.agent for n in store.notifications()] == ["fine"]


async def test_a_custom_run_asks_through_the_orchestrator(
        orchestrator: Orchestrator, store: AgentStore, clock: ManualClock) -> None:
    class Digest:
        async def run(self, context: Any) -> str:
            done = await context.ask("Name one fruit.")
            return f"Digest: {done.answer}"

    agent = watcher(name="digest", run=Digest().run)
    record = await runner_for(orchestrator, store, clock, agent).run(agent)
    [note] = store.notifications()
    assert note.text.startswith("Digest: ") and len(note.text) > len("Digest: ")
    assert note.answer_id == record.answer_id is not None


async def test_serve_runs_on_the_clock_without_waiting(
        orchestrator: Orchestrator, store: AgentStore, clock: ManualClock) -> None:
    runner = runner_for(orchestrator, store, clock, watcher())
    store.enable("watcher", clock.now())
    task = asyncio.create_task(runner.serve())
    try:
        clock.advance(HALF_HOUR)
        async with asyncio.timeout(120):
            while not store.notifications():  # noqa: ASYNC110 (a file, not an event)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert store.last_runs()["watcher"] >= clock.now() - 60
    assert isinstance(watcher().trigger, Every)


async def test_the_pause_ends_when_the_next_agent_is_due(
        orchestrator: Orchestrator, store: AgentStore, clock: ManualClock) -> None:
    runner = runner_for(orchestrator, store, clock, watcher())
    assert runner.pause() == 60, "nothing enabled: the poll"
    store.enable("watcher", clock.now())
    clock.advance(HALF_HOUR - 20)
    assert runner.pause() == 20, "due in 20 s: wake then, not a poll later"
