"""The web page, end to end in Debian's headless Chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (scripts/test.sh
installs it) with a fresh, empty profile.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from tests.server.conftest import ServerThread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    if not HAVE_CHROMIUM:
        pytest.fail("Debian's chromium is needed: apt-get install chromium (scripts/test.sh does)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 860})
        yield context
        await context.close()


async def ask_on_page(page: Page, question: str) -> None:
    await page.fill("#query", question)
    await page.press("#query", "Enter")


async def test_chat_streams_stages_shows_timings_and_takes_a_rating(
        server: ServerThread, browser: BrowserContext) -> None:
    page = await browser.new_page()
    await page.goto(server.url)
    await page.wait_for_function("document.querySelector('#status').textContent.includes('warm')")
    # the picker fills from its own request, which may answer after the status
    await page.wait_for_function("document.querySelectorAll('#chain option').length > 3")

    await ask_on_page(page, "What should I focus on today?")
    await page.wait_for_selector(".answer .tok")
    status_at_first_token = await page.get_attribute(".answer", "data-status")
    await page.wait_for_selector(".answer:not([data-status='streaming'])", timeout=240_000)

    assert status_at_first_token == "streaming", "tokens show before the answer is complete"
    assert await page.get_attribute(".answer", "data-status") == "ok"
    log = await page.evaluate("window.mirador.log")
    lengths = [e["length"] for e in log if e["type"] == "token"]
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths), "text grows token by token"
    stages = await page.locator(".answer .stage").count()
    assert stages == len(await page.locator(".timeline li").all()) >= 2
    assert await page.locator(".stage:last-child .tok.conf-high").count() > 0, "the last is cyan"
    assert await page.locator(".stage.s0 .tok.conf-low").count() > 0, "the first answer is grey"
    for timing in await page.locator(".timeline .t-time").all_text_contents():
        assert " s (first " in timing

    await page.click(".rating button[data-rating='4']")
    await page.wait_for_function("document.querySelector('.rated').textContent.includes('4/5')")
    assert "chosen" in (await page.get_attribute(".rating button[data-rating='4']", "class") or "")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "server-web-page.png"), full_page=True)


async def test_memory_panel_searches_and_forgets(server: ServerThread,
                                                 browser: BrowserContext) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        memory_id = await forget_on_page(browser, server)
        found = (await http.get("/mirador/memory/search", params={"q": "jasmine tea"})).json()
    assert memory_id not in {m["id"] for m in found["memories"]}


async def forget_on_page(browser: BrowserContext, server: ServerThread) -> str | None:
    """Ask something memorable, find it in the memory panel, forget it; its id."""
    page = await browser.new_page()
    await page.goto(server.url)
    await ask_on_page(page, "My favourite tea is jasmine. What goes with it?")
    await page.wait_for_selector(".answer:not([data-status='streaming'])", timeout=240_000)
    await page.fill("#memory-query", "jasmine tea")
    item = page.locator("#memory-list li", has_text="jasmine").first
    for _ in range(120):  # memories are written just after the answer, in the background
        await page.press("#memory-query", "Enter")
        if await item.count():
            break
        await page.wait_for_timeout(500)
    assert await item.count(), "the exchange shows in the memory panel"
    memory_id = await item.get_attribute("data-memory-id")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "server-web-memory.png"), full_page=True)
    await item.get_by_role("button", name="Forget").click()
    await page.wait_for_function("document.querySelector('#memory-note').textContent "
                                 "== 'Forgotten.'")
    assert await page.locator(f"#memory-list li[data-memory-id='{memory_id}']").count() == 0
    return memory_id


async def test_a_tool_call_and_its_result_show_compactly_and_open(
        server: ServerThread, browser: BrowserContext) -> None:
    page = await browser.new_page()
    await page.goto(server.url)
    await page.wait_for_function("document.querySelector('#chain option[value=calculation]')")
    await page.select_option("#chain", "calculation")
    await ask_on_page(page, "What is 17.5% of 2,340 plus 12 squared?")
    await page.wait_for_selector(".answer:not([data-status='streaming'])", timeout=240_000)
    tool = page.locator("details.tool").first
    assert await tool.get_attribute("open") is None, "collapsed until opened"
    assert await tool.locator(".tool-name").text_content() == "calculate"
    assert "expression:" in (await tool.locator(".tool-args").text_content() or "")
    assert "ok" in (await tool.get_attribute("class") or "")
    outcome = await tool.locator(".tool-outcome").text_content() or ""
    assert outcome.startswith("→ ") and "553.5" in outcome and outcome.endswith(" s")
    assert not await tool.locator(".tool-result").is_visible()
    await tool.locator("summary").click()
    assert await tool.locator(".tool-result").is_visible()
    assert "553.5" in (await tool.locator(".tool-result").text_content() or "")
    assert '"expression"' in (await tool.locator(".tool-arguments").text_content() or "")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "server-web-tools.png"), full_page=True)


SCRIPTED_TOOL_FAILURE = [  # a fault injected in the stream: the page must show the error
    {"type": "ack", "answer_id": "a1", "query": "q", "complexity": "simple", "stages": ["s"]},
    {"type": "stage_start", "stage": "s", "model": "m", "persona": "p", "confidence": 1.0,
     "index": 0},
    {"type": "tool_call", "stage": "s", "model": "m", "tool": "search_docs",
     "arguments": {"query": "rent " * 30}, "round": 1},
    {"type": "tool_result", "stage": "s", "tool": "search_docs", "ok": False,
     "text": "search_docs took longer than 30 s and was stopped", "seconds": 30.0, "round": 1},
    {"type": "token", "text": "I could not search.", "stage": "s", "model": "m",
     "confidence": 1.0},
    {"type": "stage_end", "stage": "s", "model": "m", "status": "ok", "tokens": 5,
     "seconds": 31.0, "ttft": 30.5, "tokens_per_second": None},
    {"type": "done", "answer_id": "a1", "status": "ok", "answer": "I could not search.",
     "final_stage": "s"},
]


async def test_a_failed_tool_shows_its_error(server: ServerThread,
                                             browser: BrowserContext) -> None:
    import json

    page = await browser.new_page()
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in SCRIPTED_TOOL_FAILURE)
    await page.route("**/mirador/ask", lambda route: route.fulfill(
        status=200, body=body, headers={"Content-Type": "text/event-stream"}))
    await page.goto(server.url)
    await ask_on_page(page, "What is my rent?")
    tool = page.locator("details.tool.failed")
    await tool.wait_for()
    outcome = await tool.locator(".tool-outcome").text_content() or ""
    assert outcome.startswith("✗ search_docs took longer than 30 s")
    args = await tool.locator(".tool-args").text_content() or ""
    assert args.startswith('(query: "rent rent') and "…" in args and len(args) < 60
