"""Load and faults: many clients at once, a full queue, clients that leave, backends that die."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai
import pytest

from mirador.backends.scripted import Script, ScriptedBackend
from mirador.compose import create_orchestrator
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings
from tests.server.conftest import ServerThread, sse_events
from tests.support.net import wait_for

QUICK = {"stages": ["quick_response"]}


def scripted_factory(scripted: ScriptedBackend) -> Callable[[Settings], Orchestrator]:
    """Orchestrators whose llama.cpp backend is the scripted one: faults on cue."""
    def factory(settings: Settings) -> Orchestrator:
        orchestrator = create_orchestrator(settings)
        orchestrator.manager.use_backend("llamacpp", scripted)
        return orchestrator
    return factory



# -- many clients at once ----------------------------------------------------------------


async def native_answer(server: ServerThread, http: httpx.AsyncClient, n: int) -> str:
    events: list[dict[str, Any]] = []
    async with http.stream("POST", f"{server.url}/mirador/ask",
                           json={"query": f"Name a fruit. ({n})", **QUICK}) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert [e["type"] for e in events].count("token") >= 1
    assert events[-1]["type"] == "done" and events[-1]["status"] == "ok"
    return str(events[-1]["answer"])


async def ollama_answer(server: ServerThread, n: int) -> str:
    async with ollama.AsyncClient(host=server.url, timeout=300) as client:
        stream = await client.chat(model="mirador:quick", stream=True,
                                   messages=[{"role": "user", "content": f"Name a colour. ({n})"}])
        parts = [p async for p in stream]
    assert parts[-1].done
    return "".join(p.message.content or "" for p in parts)


async def openai_answer(server: ServerThread, n: int) -> str:
    async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", timeout=300,
                                  max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="mirador:quick", stream=True,
            messages=[{"role": "user", "content": f"Name an animal. ({n})"}])
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def test_eight_concurrent_streaming_clients_all_get_answers(server: ServerThread) -> None:
    busiest = {"active": 0, "queued": 0}

    async def watch(http: httpx.AsyncClient) -> None:
        while True:
            health = (await http.get(f"{server.url}/mirador/health")).json()
            busiest["active"] = max(busiest["active"], health["active"])
            busiest["queued"] = max(busiest["queued"], health["queued"])
            await asyncio.sleep(0.1)

    async with httpx.AsyncClient(timeout=300) as http:
        watcher = asyncio.create_task(watch(http))
        answers = await asyncio.gather(
            *(native_answer(server, http, n) for n in range(4)),
            *(ollama_answer(server, n) for n in range(2)),
            *(openai_answer(server, n) for n in range(2)))
        watcher.cancel()
    assert len(answers) == 8 and all(a.strip() for a in answers)
    assert busiest["active"] == 4, "four answers run at once (server.max_active)"
    assert busiest["queued"] >= 1, "the rest wait in the queue"
    assert wait_for(lambda: server.health()["active"] == 0)


# -- a full queue ------------------------------------------------------------------------


def test_beyond_the_queue_bound_a_request_gets_503_at_once(make_server: Callable) -> None:
    scripted = ScriptedBackend()
    scripted.enqueue(Script(pieces=["a", "b"], hang_after=1), Script(pieces=["fine"]))
    server = make_server({"max_active": 1, "max_queued": 1}, scripted_factory(scripted))
    url = f"{server.url}/mirador/ask"
    with httpx.Client(timeout=30) as first, httpx.Client(timeout=30) as third:
        running = first.send(first.build_request("POST", url, json={"query": "one", **QUICK}),
                             stream=True)
        lines = running.iter_lines()  # kept: dropping the iterator would close the stream
        assert next(lines) == "event: ack"  # the first answer is streaming, then hangs
        with httpx.Client(timeout=30) as second:
            queued: dict[str, Any] = {}
            waiter = threading.Thread(target=lambda: queued.update(
                reply=second.post(url, json={"query": "two", "stream": False, **QUICK})))
            waiter.start()
            assert wait_for(lambda: server.health()["queued"] == 1)
            started = time.monotonic()
            refused = third.post(url, json={"query": "three", **QUICK})
            assert time.monotonic() - started < 2.0, "refused at once, not left hanging"
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
            assert "server.max_queued is 1" in refused.json()["error"]["message"]
            running.close()  # the first client leaves: its slot goes to the queued one
            waiter.join(timeout=30)
    assert queued["reply"].status_code == 200 and queued["reply"].json()["answer"] == "fine"
    assert wait_for(lambda: server.health()["active"] == 0)


# -- clients that leave ---------------------------------------------------------------------


def test_a_client_that_leaves_stops_its_generation(make_server: Callable) -> None:
    scripted = ScriptedBackend()
    scripted.enqueue(Script(pieces=["a", "b", "c"], hang_after=2))
    server = make_server({}, scripted_factory(scripted))
    with httpx.stream("POST", f"{server.url}/mirador/ask", json={"query": "hi", **QUICK},
                      timeout=30) as reply:
        tokens = 0
        for event in sse_events(reply):
            tokens += event["type"] == "token"
            if tokens == 2:
                break
    assert wait_for(lambda: scripted.closed_streams == 1, 5), "the backend stream was closed"
    assert wait_for(lambda: server.health()["active"] == 0, 5)


def test_leaving_mid_answer_frees_the_real_model_at_once(server: ServerThread) -> None:
    # Unstopped, this generation runs for thousands of tokens (minutes on two cores).
    body = {"model": "smollm2-135m", "prompt": "Count from 1 to 3000, one number per line.",
            "options": {"num_predict": 3000, "temperature": 0}}
    with httpx.stream("POST", f"{server.url}/api/generate", json=body, timeout=120) as reply:
        for count, _ in enumerate(reply.iter_lines()):
            if count == 10:
                break
    assert wait_for(lambda: server.health()["active"] == 0, 5)
    started = time.monotonic()
    short = httpx.post(f"{server.url}/api/generate", timeout=120,
                       json={"model": "smollm2-135m", "prompt": "Hi", "stream": False,
                             "options": {"num_predict": 3}})
    assert short.status_code == 200 and short.json()["eval_count"] <= 3
    assert time.monotonic() - started < 30, "the model was free: no wait for the old answer"


# -- backends that die ------------------------------------------------------------------


def test_a_backend_dying_mid_stream_ends_that_stream_with_an_error(make_server: Callable) -> None:
    scripted = ScriptedBackend()
    scripted.enqueue(Script(pieces=["Hel", "lo", " there"], fail_after=2,
                            error="the runtime crashed"), Script(pieces=["Still", " here"]))
    server = make_server({}, scripted_factory(scripted))
    with httpx.stream("POST", f"{server.url}/mirador/ask", json={"query": "hi", **QUICK},
                      timeout=30) as reply:
        events = list(sse_events(reply))
    types = [e["type"] for e in events]
    assert types == ["ack", "stage_start", "token", "token", "error", "stage_end", "done"]
    assert "the runtime crashed" in events[4]["message"] and events[4]["status"] == "error"
    assert events[5]["partial"] and events[-1]["status"] == "partial"
    assert server.health()["status"] == "ok"
    again = httpx.post(f"{server.url}/mirador/ask", timeout=30,
                       json={"query": "hi again", "stream": False, **QUICK})
    assert again.json()["status"] == "ok" and again.json()["answer"] == "Still here"


def test_compat_clients_see_a_dead_backend_as_an_error(make_server: Callable) -> None:
    scripted = ScriptedBackend()
    dead = Script(pieces=["x"], fail_after=0, error="the runtime crashed")
    scripted.enqueue(dead, dead, dead, Script(pieces=["ok"]))
    server = make_server({}, scripted_factory(scripted))
    question = [{"role": "user", "content": "hi"}]
    with ollama.Client(host=server.url) as client, pytest.raises(ollama.ResponseError) as err:
        list(client.chat(model="mirador:quick", messages=question, stream=True))
    assert "the runtime crashed" in err.value.error
    whole = httpx.post(f"{server.url}/api/generate", timeout=30,
                       json={"model": "mirador:quick", "prompt": "hi", "stream": False})
    assert whole.status_code == 500 and "the runtime crashed" in whole.json()["error"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as oai:
        with pytest.raises(openai.APIError) as api_err:
            list(oai.chat.completions.create(model="mirador:quick", messages=question,  # type: ignore[arg-type]
                                             stream=True))
        assert "the runtime crashed" in api_err.value.message
        reply = oai.chat.completions.create(model="mirador:quick", messages=question)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "ok"
    assert server.health()["active"] == 0
