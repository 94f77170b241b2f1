"""Fair sharing of one model (issue 11, items 4-6): a client that leaves stops its answer,
waiting for the model is not charged to first-token timeouts, the queue has its own bound."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import ollama
import pytest

from tests.server.conftest import ServerThread
from tests.support.net import wait_for

COUNT = "Write a very long story about a lighthouse keeper and a storm, at least 3000 words."


def stages(first_token_timeout: float, max_tokens: int) -> dict:
    return {"stages": [{"name": "quick_response", "persona": "quick", "confidence": 0.6,
                        "max_tokens": max_tokens, "first_token_timeout": first_token_timeout,
                        "total_timeout": 120}]}



def test_a_non_streaming_client_that_leaves_stops_its_generation(server: ServerThread) -> None:
    body = {"model": "smollm2-135m", "max_tokens": 100_000, "temperature": 0,
            "messages": [{"role": "user", "content": COUNT}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=1)
    assert wait_for(lambda: server.health()["active"] == 0, 15), "generation went on"
    manager = server.runtime.orchestrator.manager
    assert all(s.busy == 0 for s in manager.status()), "the model is free again"
    ollama_body = {"model": "smollm2-135m", "prompt": COUNT, "stream": False,
                   "options": {"num_predict": -1}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/api/generate", json=ollama_body, timeout=1)
    assert wait_for(lambda: server.health()["active"] == 0, 15), "generation went on"


def test_health_answers_promptly_while_an_answer_runs(server: ServerThread) -> None:
    body = {"model": "smollm2-135m", "prompt": COUNT, "options": {"num_predict": 200}}
    with httpx.stream("POST", f"{server.url}/api/generate", json=body, timeout=120) as reply:
        lines = reply.iter_lines()
        next(lines)
        started = time.monotonic()
        assert server.health()["active"] == 1
        assert time.monotonic() - started < 1.0


def test_twenty_ollama_streaming_clients_on_quick_get_no_errors(
        make_server: Callable[..., ServerThread]) -> None:
    # Twenty answers of 24 tokens take several first-token timeouts (5 s) one after
    # another: only the time each waits in the model's queue makes that fine.
    server = make_server({"max_active": 20}, config=stages(5.0, 24))

    async def one(n: int) -> tuple[str, float]:
        started = time.monotonic()
        text, first = [], None
        async with ollama.AsyncClient(host=server.url, timeout=300) as client:
            async for part in await client.chat(model="mirador:quick", stream=True, messages=[
                    {"role": "user", "content": f"Name a colour (#{n})."}]):
                first = first if first is not None else time.monotonic() - started
                text.append(part.message.content or "")
        return "".join(text), first or 0.0

    async def all_of_them() -> list[tuple[str, float] | BaseException]:
        return await asyncio.gather(*(one(n) for n in range(20)), return_exceptions=True)

    results = asyncio.run(all_of_them())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    texts = [r[0] for r in results if not isinstance(r, BaseException)]
    assert all(t.strip() and "[timeout]" not in t and "[error]" not in t for t in texts), texts
    assert server.health()["active"] == 0


def test_the_queue_wait_has_its_own_bound_and_error(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server({"max_active": 4}, config={  # one answer at a time: two must queue
        **stages(30.0, 400), "models": {"queue_wait": 0.5},
        "backends": {"llamacpp": {"sequences": 1}}})
    body = {"query": COUNT, "stream": False, "stages": ["quick_response"]}
    replies: list[httpx.Response] = []

    def ask() -> None:
        replies.append(httpx.post(f"{server.url}/mirador/ask", json=body, timeout=120))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r.json() for r in replies]
    waited = [d for d in done if d["status"] == "error"]
    assert waited, "two of three waited longer than models.queue_wait"
    assert all("models.queue_wait" in d["error"] for d in waited), waited
    assert any(d["status"] == "ok" for d in done)
