"""Mirador's own API: the SSE answer stream, models, health, errors and the OpenAPI description."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields

import httpx
import jsonschema
import pytest

from mirador.orchestration.events import Ack, Done, ErrorEvent, StageEnd, StageStart, Token
from mirador.server import agents_api, embed_api, native, ollama_api, openai_api
from tests.server.conftest import ServerThread, sse_events

EVENT_FIELDS = {cls.type: {"type", *(f.name for f in fields(cls))}
                for cls in (Ack, StageStart, Token, ErrorEvent, StageEnd, Done)}


def ask(server: ServerThread, **body: object) -> list[dict]:
    with httpx.stream("POST", f"{server.url}/mirador/ask", json=body, timeout=120) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(reply))


def test_ask_streams_the_same_events_as_ask_json(server: ServerThread) -> None:
    events = ask(server, query="What is the capital of France?")
    types = [e["type"] for e in events]
    assert types[0] == "ack" and types[1] == "stage_start" and types[-1] == "done"
    assert types.count("token") >= 2, "tokens arrive one by one"
    for event in events:
        assert set(event) == EVENT_FIELDS[event["type"]], event
    done = events[-1]
    final = "".join(e["text"] for e in events
                    if e["type"] == "token" and e["stage"] == done["final_stage"])
    assert done["status"] == "ok" and done["answer"] == final.strip()
    assert done["answer_id"] == events[0]["answer_id"]


def test_ask_runs_a_chain_stage_by_stage(server: ServerThread) -> None:
    events = ask(server, query="Name a good habit.", chain="duo")
    starts = [e for e in events if e["type"] == "stage_start"]
    assert events[0]["chain"] == "duo"
    assert [s["stage"] for s in starts] == ["brief", "brief_final"]
    assert starts[0]["confidence"] < starts[1]["confidence"]
    ends = [e for e in events if e["type"] == "stage_end"]
    assert all(e["status"] == "ok" and e["seconds"] > 0 for e in ends)


def test_ask_without_streaming_returns_the_done_event(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/mirador/ask", timeout=120,
                       json={"query": "Say hello.", "stages": ["quick_response"],
                             "stream": False})
    assert reply.status_code == 200
    done = reply.json()
    assert done["type"] == "done" and done["answer"] and list(done["answers"]) == ["quick_response"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"query": "hi", "chain": "nope"}, 404, "chain 'nope' is not in the manifest"),
    ({"query": "hi", "stages": ["bogus"]}, 400, "unknown stage(s) bogus"),
    ({"query": "hi", "colour": "red"}, 400, "colour: unknown field"),
    ({"query": ""}, 400, "query"),
    ({}, 400, "query: Field required"),
])
def test_bad_asks_get_a_clear_json_error(server: ServerThread, body: dict, status: int,
                                         words: str) -> None:
    reply = httpx.post(f"{server.url}/mirador/ask", json=body, timeout=30)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert words in error["message"] and error["type"]
    assert "Traceback" not in reply.text


def test_models_list_load_unload_and_ps(server: ServerThread) -> None:
    models = httpx.get(f"{server.url}/mirador/models", timeout=30).json()
    assert {"smollm2-135m", "tiny"} <= {m["id"] for m in models["models"]}
    assert "duo" in {c["id"] for c in models["chains"]}
    assert {"mirador:auto", "mirador:quick", "mirador:duo", "tiny"} <= set(models["names"])
    loaded = httpx.post(f"{server.url}/mirador/models/tiny/load", timeout=60).json()
    assert loaded == {"id": "tiny", "loaded": True, "seconds": loaded["seconds"]}
    assert "tiny" in {m["id"] for m in httpx.get(f"{server.url}/mirador/ps").json()["models"]}
    httpx.post(f"{server.url}/mirador/models/tiny/unload", timeout=60).raise_for_status()
    assert "tiny" not in {m["id"] for m in httpx.get(f"{server.url}/mirador/ps").json()["models"]}
    missing = httpx.post(f"{server.url}/mirador/models/nope/load", timeout=30)
    assert missing.status_code == 404
    assert "not in the manifest" in missing.json()["error"]["message"]


def test_models_stay_warm_between_requests(server: ServerThread) -> None:
    ask(server, query="Hi!", stages=["quick_response"])
    before = server.health()
    assert "smollm2-135m" in before["loaded"]
    ask(server, query="Hello again!", stages=["quick_response"])
    after = server.health()
    assert "smollm2-135m" in after["loaded"] and after["served"] == before["served"] + 1


def test_health_reports_the_home_and_the_queue(server: ServerThread) -> None:
    health = server.health()
    assert health["status"] == "ok" and health["active"] == 0 and health["queued"] == 0
    assert health["max_active"] == 4 and "home" not in health


def test_unknown_routes_and_methods_are_json_errors(server: ServerThread) -> None:
    missing = httpx.get(f"{server.url}/mirador/nothing")
    assert missing.status_code == 404 and "no such endpoint" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{server.url}/mirador/ask")
    assert wrong.status_code == 405 and "GET is not allowed" in wrong.json()["error"]["message"]
    broken = httpx.post(f"{server.url}/mirador/ask", content=b"{not json",
                        headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]


# -- the OpenAPI description matches what the server does -------------------------------


@pytest.fixture(scope="module")
def openapi(server: ServerThread) -> dict:
    return httpx.get(f"{server.url}/openapi.json").json()


def validate(doc: dict, schema: dict, instance: object) -> None:
    jsonschema.validate(instance, {**schema, "components": doc["components"]})


def response_schema(doc: dict, path: str, method: str, status: str = "200",
                    media: str = "application/json") -> dict:
    return doc["paths"][path][method]["responses"][status]["content"][media]["schema"]


def test_openapi_lists_every_route(openapi: dict) -> None:
    routers = (native.router, agents_api.router, ollama_api.router, openai_api.router,
               embed_api.ollama_router, embed_api.openai_router)
    routes = {(r.path, m.lower()) for router in routers
              for r in router.routes for m in getattr(r, "methods", ())}
    documented = {(p, m) for p, ops in openapi["paths"].items() for m in ops}
    assert routes == documented
    assert {"/mirador/ask", "/api/chat", "/api/generate", "/api/tags", "/api/ps", "/api/show",
            "/api/version", "/v1/chat/completions", "/v1/models"} <= set(openapi["paths"])


def test_sse_events_match_their_openapi_schemas(server: ServerThread, openapi: dict) -> None:
    schema = response_schema(openapi, "/mirador/ask", "post", media="text/event-stream")
    for event in ask(server, query="What is two plus two?"):
        validate(openapi, schema, event)
    with pytest.raises(jsonschema.ValidationError):
        validate(openapi, schema, {"type": "token", "text": 3})


def test_tool_events_match_their_openapi_schemas(server: ServerThread, openapi: dict) -> None:
    schema = response_schema(openapi, "/mirador/ask", "post", media="text/event-stream")
    events = ask(server, query="What is 6 times 7?", chain="calculation")
    assert {"tool_call", "tool_result"} <= {e["type"] for e in events}
    for event in events:
        validate(openapi, schema, event)


def test_json_responses_match_their_openapi_schemas(server: ServerThread, openapi: dict) -> None:
    for path in ("/mirador/health", "/mirador/models", "/mirador/ps"):
        validate(openapi, response_schema(openapi, path, "get"),
                 httpx.get(f"{server.url}{path}").json())
    bad = httpx.post(f"{server.url}/mirador/ask", json={"query": 1})
    validate(openapi, response_schema(openapi, "/mirador/ask", "post", "400"), bad.json())


def test_rate_an_answer_and_an_unknown_one(server: ServerThread) -> None:
    done = httpx.post(f"{server.url}/mirador/ask", timeout=120,
                      json={"query": "How do I stay focused?", "stream": False}).json()
    rated = httpx.post(f"{server.url}/mirador/rate", timeout=60,
                       json={"answer_id": done["answer_id"], "rating": 4, "note": "good"})
    assert rated.status_code == 200, rated.text
    body = rated.json()
    assert body["answer_id"] == done["answer_id"] and body["rating"] == 4 and body["query_type"]
    unknown = httpx.post(f"{server.url}/mirador/rate", json={"answer_id": "zzzz", "rating": 3})
    assert unknown.status_code == 404
    assert "no answer has the id" in unknown.json()["error"]["message"]
    out_of_range = httpx.post(f"{server.url}/mirador/rate", json={"rating": 9})
    assert out_of_range.status_code == 400 and "rating" in out_of_range.json()["error"]["message"]


def test_memory_list_search_and_forget(server: ServerThread) -> None:
    done = httpx.post(f"{server.url}/mirador/ask", timeout=120,
                      json={"query": "My cat is called Pixel. Any toy ideas?", "stream": False,
                            "namespace": "pets"}).json()
    memory_id = done["answer_id"]

    def listed() -> set[str]:
        reply = httpx.get(f"{server.url}/mirador/memory", params={"namespace": "pets"}, timeout=60)
        return {m["id"] for m in reply.json()["memories"]}

    assert wait_until(lambda: memory_id in listed()), "the exchange is remembered"
    found = httpx.get(f"{server.url}/mirador/memory/search", timeout=60,
                      params={"q": "what is my cat called", "namespace": "pets"}).json()
    assert found["memories"][0]["id"] == memory_id and found["memories"][0]["score"] > 0
    assert "Pixel" in found["memories"][0]["query"]
    gone = httpx.delete(f"{server.url}/mirador/memory/{memory_id}", timeout=60)
    assert gone.json() == {"id": memory_id, "forgotten": True}
    assert memory_id not in listed()
    again = httpx.get(f"{server.url}/mirador/memory/search", timeout=60,
                      params={"q": "what is my cat called", "namespace": "pets"}).json()
    assert memory_id not in {m["id"] for m in again["memories"]}
    missing = httpx.delete(f"{server.url}/mirador/memory/{memory_id}", timeout=60)
    assert missing.status_code == 404 and "no memory" in missing.json()["error"]["message"]


def test_memory_turned_off_is_a_clear_501(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(config={"memory": {"enabled": False}})
    reply = httpx.get(f"{server.url}/mirador/memory")
    assert reply.status_code == 501 and "memory.enabled" in reply.json()["error"]["message"]


def test_memory_from_another_embedder_is_a_clear_409(
        make_server: Callable[..., ServerThread]) -> None:
    from mirador.memory.memory import ranking_params
    from mirador.memory.store import open_store
    from tests.memory.conftest import rec
    from tests.memory.test_reindex import Letters

    server = make_server()
    settings = server.app.state.runtime.settings  # type: ignore[attr-defined]
    other = open_store(settings, Letters(), ranking_params(settings))  # type: ignore[arg-type]
    other.add([rec("car", "I drive a 2015 Honda Civic.")])
    reply = httpx.get(f"{server.url}/mirador/memory/search", params={"q": "my car"}, timeout=60)
    other.close()
    assert reply.status_code == 409
    assert reply.json()["error"]["type"] == "embedder_changed"
    assert "mirador memory reindex" in reply.json()["error"]["message"]


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
