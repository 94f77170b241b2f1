"""Agents in the real server on 127.0.0.1, on a manual clock: a scheduled agent's result
reaches GET /mirador/notifications, Mirador's memory, and the web page in Chromium."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext

from mirador.agents import AgentStore, ManualClock
from mirador.toolspec import Tool, ToolResult
from tests.server.conftest import ServerThread
from tests.server.test_web import browser  # noqa: F401  (the headless Chromium fixture)

TOKEN = "agent-token"
AGENTS = {"agents": [
    {"name": "colours", "trigger": "every 30m", "prompt": "Name one colour of the sky."},
    {"name": "idle", "trigger": "every 30m", "prompt": "Never enabled."},
    {"name": "reading", "trigger": "every 1h", "prompt": "The reading is {value}. Say so.",
     "when": {"tool": "gauge", "op": ">", "value": 10}}]}


def gauge() -> Tool:
    async def call(args: dict[str, Any]) -> ToolResult:
        return ToolResult(text="12", data=12)
    return Tool(name="gauge", description="A reading.", parameters={"type": "object"},
                call=call, source="test")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def watching(make_server: Callable[..., ServerThread], clock: ManualClock) -> ServerThread:
    server = make_server({"api_token": TOKEN}, config=AGENTS, clock=clock,
                         agent_tools={"gauge": gauge()})
    store = AgentStore(server.runtime.settings.home)
    for name in ("colours", "reading"):
        store.enable(name, clock.now())
    return server


def notes(server: ServerThread, **params: Any) -> dict:
    reply = httpx.get(f"{server.url}/mirador/notifications", params=params, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"})
    reply.raise_for_status()
    return reply.json()


def wait_for(check: Callable[[], Any], seconds: float = 180) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


async def test_scheduled_results_reach_the_api_memory_and_the_page(
        watching: ServerThread, clock: ManualClock,
        browser: BrowserContext) -> None:  # noqa: F811
    assert notes(watching) == {"notifications": [], "enabled": ["colours", "reading"]}
    clock.advance(1799)
    await asyncio.sleep(0.5)  # a few of the runner's ticks: nothing is due yet
    assert notes(watching)["notifications"] == []
    clock.advance(1)
    [note] = wait_for(lambda: notes(watching)["notifications"])
    assert note["agent"] == "colours" and note["text"].strip() and note["answer_id"]
    clock.advance(1800)  # the hour: both are due, and the gauge's 12 > 10 holds
    found = wait_for(lambda: len(notes(watching)["notifications"]) >= 3 and
                     notes(watching)["notifications"])
    assert {n["agent"] for n in found} == {"colours", "reading"}, "idle is never enabled"
    reading = next(n for n in found if n["agent"] == "reading")
    assert "12 > 10 holds" in reading["condition"]
    assert [n["agent"] for n in notes(watching, agent="reading")["notifications"]] == ["reading"]

    auth = {"Authorization": f"Bearer {TOKEN}"}
    remembered = wait_for(lambda: httpx.get(f"{watching.url}/mirador/memory", headers=auth,
                                            timeout=30).json()["memories"])
    assert "Name one colour of the sky." in [m["query"] for m in remembered]

    page = await browser.new_page()
    await page.add_init_script(f"localStorage.setItem('mirador-token', '{TOKEN}')")
    await page.goto(watching.url)
    await page.wait_for_selector(f"#notes-list li[data-notification-id='{note['id']}']")
    shown = await page.locator("#notes-list li .note-agent").all_text_contents()
    assert sorted(set(shown)) == ["colours", "reading"]
    assert note["text"].strip()[:20] in await page.locator("#notes-list").inner_text()


def test_notifications_need_the_token(watching: ServerThread) -> None:
    reply = httpx.get(f"{watching.url}/mirador/notifications", timeout=30)
    assert reply.status_code == 401


def test_every_run_is_logged(watching: ServerThread, clock: ManualClock) -> None:
    clock.advance(3600)
    store = AgentStore(watching.runtime.settings.home)
    runs = wait_for(lambda: len(store.runs()) >= 2 and store.runs())
    assert {r.agent: r.did for r in runs} == {"colours": "answered", "reading": "answered"}
    assert all(r.answer_id and r.seconds > 0 for r in runs)
