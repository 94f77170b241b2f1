"""How models ask for tools, per backend: llama.cpp by grammar (the real SmolLM2),
Ollama's `tools` / `message.tool_calls`, OpenAI's `tools` / streamed `delta.tool_calls`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mirador.backends import ChatRequest, Finished, Message, TextPiece, ToolCallRequest
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.backends.ollama import OllamaBackend
from mirador.backends.openai_compat import OpenAIBackend
from mirador.backends.tool_calls import choice_schema, parse_choice
from mirador.catalog.manifest import ModelEntry, SamplingOptions, manifest_for
from mirador.errors import BackendError
from mirador.settings import BackendsConfig, OpenAIConfig, Settings, load_settings
from mirador.tools.builtins import builtin_tools
from tests.support.fake_ollama import FakeOllama
from tests.support.loopback import LoopbackHTTPServer

GREEDY = SamplingOptions(temperature=0.0, max_tokens=120)
QUESTION = "What is 17.5% of 2,340 plus 12 squared?"


def calculate_tool(settings: Settings) -> Any:
    return next(t for t in builtin_tools(settings) if t.name == "calculate")


async def drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


# -- llama.cpp: a grammar-constrained choice, then prose ---------------------------------

@pytest.fixture(scope="module")
async def llama(session_settings: Settings) -> AsyncIterator[LlamaCppBackend]:
    backend = LlamaCppBackend(session_settings)
    yield backend
    await backend.aclose()


async def test_the_small_model_asks_for_calculate_with_a_valid_call(
        llama: LlamaCppBackend, session_settings: Settings) -> None:
    persona = manifest_for(session_settings).resolve("calculator")
    request = ChatRequest(model=persona.model, options=GREEDY,
                          messages=(Message("system", persona.system or ""),
                                    Message("user", QUESTION)),
                          tools=(calculate_tool(session_settings),))
    events = await drain(llama.stream_chat(request))
    [asked] = [e for e in events if isinstance(e, ToolCallRequest)]
    assert asked.name == "calculate" and set(asked.arguments) == {"expression"}
    assert not [e for e in events if isinstance(e, TextPiece)]
    assert isinstance(events[-1], Finished)
    result = await calculate_tool(session_settings).call(asked.arguments)
    after = ChatRequest(model=persona.model, options=GREEDY, tools=request.tools,
                        messages=(*request.messages, Message("assistant", "",
                                                             tool_calls=(asked,)),
                                  Message("tool", result.text, tool_name="calculate")))
    prose = "".join(e.text for e in await drain(llama.stream_chat(after))
                    if isinstance(e, TextPiece))
    assert prose.strip() and not prose.lstrip().startswith("{")  # an answer, streamed


def test_the_choice_schema_offers_each_tool_or_an_answer(settings: Settings) -> None:
    schema = choice_schema([calculate_tool(settings)])
    call, answer = schema["oneOf"]
    assert call["properties"]["tool"] == {"const": "calculate"}
    assert call["properties"]["arguments"]["required"] == ["expression"]
    assert answer["required"] == ["answer"]
    assert parse_choice('{"answer": "Paris"}') == TextPiece("Paris")
    with pytest.raises(BackendError, match="raise the persona's max_tokens"):
        parse_choice('{"tool": "calculate", "argu')


# -- Ollama: the `tools` field and `message.tool_calls` ----------------------------------

class ToolCallingOllama(FakeOllama):
    """FakeOllama that asks for `calculate` while no tool result has come back."""

    def chat(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if body.get("tools") and body["messages"][-1]["role"] != "tool":
            yield {"model": body["model"], "created_at": "2026-01-01T00:00:00Z", "done": True,
                   "done_reason": "stop", "message": {"role": "assistant", "content": "",
                   "tool_calls": [{"function": {"name": "calculate",
                                                "arguments": {"expression": "2+2"}}}]}}
            return
        yield from super().chat(body)


async def test_ollama_gets_tools_and_reads_tool_calls(tiny_gguf: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with ToolCallingOllama({"tiny": tiny_gguf}) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        settings = load_settings()
        backend = OllamaBackend(settings)
        model = ModelEntry(id="tiny-on-ollama", backend="ollama", name="tiny")
        tools = (calculate_tool(settings),)
        request = ChatRequest(model=model, messages=(Message("user", "2+2?"),), tools=tools,
                              options=SamplingOptions(temperature=0.0, max_tokens=8))
        events = await drain(backend.stream_chat(request))
        assert ToolCallRequest("calculate", {"expression": "2+2"}) in events
        sent = server.bodies[-1]["tools"][0]["function"]
        assert sent["name"] == "calculate" and sent["parameters"]["required"] == ["expression"]
        after = ChatRequest(model=model, tools=tools, options=request.options, messages=(
            *request.messages, Message("assistant", "", tool_calls=(events[0],)),
            Message("tool", "2+2 = 4", tool_name="calculate")))
        answer = await drain(backend.stream_chat(after))
        assert any(isinstance(e, TextPiece) for e in answer)
        wire = server.bodies[-1]["messages"]
        assert wire[1]["tool_calls"] == [{"function": {"name": "calculate",
                                                       "arguments": {"expression": "2+2"}}}]
        assert wire[2] == {"role": "tool", "content": "2+2 = 4", "tool_name": "calculate"}
        await backend.aclose()


# -- OpenAI-compatible: `tools` and streamed `delta.tool_calls` fragments -----------------

class FragmentServer(LoopbackHTTPServer):
    """Streams one tool call whose arguments arrive in three fragments, as OpenAI does."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def _bind(self) -> ThreadingHTTPServer:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                app.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for delta, reason in app.deltas():
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                             "model": "m", "choices": [{"index": 0, "delta": delta,
                                                        "finish_reason": reason}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @staticmethod
    def deltas() -> list[tuple[dict[str, Any], str | None]]:
        def part(**function: str) -> dict[str, Any]:
            return {"tool_calls": [{"index": 0, "function": function,
                                    **({"id": "call_9", "type": "function"}
                                       if "name" in function else {})}]}

        return [({"role": "assistant", "content": None}, None),
                (part(name="calculate", arguments=""), None),
                (part(arguments='{"expres'), None), (part(arguments='sion": "6*'), None),
                (part(arguments='7"}'), None), ({}, "tool_calls")]


async def test_openai_streamed_fragments_make_one_call() -> None:
    with FragmentServer() as server:
        settings = load_settings(backends=BackendsConfig(openai=OpenAIConfig(
            base_url=server.url + "/v1")))
        backend = OpenAIBackend(settings)
        model = ModelEntry(id="m", backend="openai", name="m")
        tools = (calculate_tool(settings),)
        events = await drain(backend.stream_chat(ChatRequest(
            model=model, messages=(Message("user", "6*7?"),), tools=tools)))
        assert events[0] == ToolCallRequest("calculate", {"expression": "6*7"}, id="call_9")
        assert server.bodies[0]["tools"][0]["function"]["name"] == "calculate"
        await drain(backend.stream_chat(ChatRequest(model=model, tools=tools, messages=(
            Message("user", "6*7?"), Message("assistant", "", tool_calls=(events[0],)),
            Message("tool", "6*7 = 42", tool_name="calculate", tool_call_id="call_9")))))
        sent = server.bodies[-1]["messages"]
        assert sent[1]["tool_calls"][0] == {"id": "call_9", "type": "function", "function": {
            "name": "calculate", "arguments": '{"expression": "6*7"}'}}
        assert sent[2] == {"role": "tool", "content": "6*7 = 42", "tool_call_id": "call_9"}
        await backend.aclose()
