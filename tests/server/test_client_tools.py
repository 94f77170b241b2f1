"""Client tools through the real `ollama` and `openai` clients against the real server on
SmolLM2: the model calls the client's tool, the client sends the result, the model answers
from it; tool_choice is honoured or refused; bad tool schemas are a 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
import yaml

from mirador.backends import ChatRequest
from mirador.backends.scripted import ScriptedBackend
from mirador.server.app import create_app
from tests.server.conftest import ServerThread, settings_for, write_home
from tests.support.net import free_port

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
RESULT = "It is 31 degrees and sunny in Paris."


def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
      city: the city's name
    """
    return RESULT


def test_ollama_chat_gets_a_tool_call_with_object_arguments(oclient: ollama.Client) -> None:
    reply = oclient.chat(model="mirador:quick", messages=ASK, tools=[get_weather],
                         options={"temperature": 0})
    calls = reply.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]
    assert isinstance(calls[0].function.arguments, dict) and "city" in calls[0].function.arguments


def test_ollama_streamed_tool_call_then_an_answer_from_the_result(
        oclient: ollama.Client, requests_seen: list[ChatRequest]) -> None:
    parts = list(oclient.chat(model="mirador:quick", messages=ASK, tools=[get_weather],
                              options={"temperature": 0}, stream=True))
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert [c.function.name for c in calls] == ["get_weather"] and parts[-1].done
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": dict(calls[0].function.arguments)}}]},
        {"role": "tool", "tool_name": "get_weather", "content": RESULT}]
    answer = oclient.chat(model="mirador:quick", messages=history, tools=[get_weather],
                          options={"temperature": 0})
    assert not answer.message.tool_calls and answer.message.content
    sent = requests_seen[-1].messages
    assert [m.role for m in sent][-2:] == ["assistant", "tool"]
    assert sent[-1].tool_name == "get_weather" and sent[-1].content == RESULT


def test_openai_tool_call_whole_and_streamed(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="mirador:quick", messages=ASK, tools=[WEATHER],
                                        temperature=0, tool_choice="required")
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.id and call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    chunks = list(oai.chat.completions.create(model="mirador:quick", messages=ASK,
                                              tools=[WEATHER], temperature=0, stream=True,
                                              tool_choice="required"))
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert [d.function.name for d in deltas] == ["get_weather"]  # type: ignore[union-attr]
    assert deltas[0].id and deltas[0].index == 0
    assert json.loads(deltas[0].function.arguments or "")  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_openai_second_turn_answers_from_the_tool_result(
        oai: openai.OpenAI, requests_seen: list[ChatRequest]) -> None:
    history: Any = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": RESULT}]
    reply = oai.chat.completions.create(model="mirador:quick", messages=history,
                                        tools=[WEATHER], temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls
    tool = requests_seen[-1].messages[-1]
    assert tool.role == "tool" and tool.tool_name == "get_weather"
    assert tool.tool_call_id == "call_1"


def test_tool_choice_none_gives_no_call_and_offers_no_tools(
        oai: openai.OpenAI, requests_seen: list[ChatRequest]) -> None:
    reply = oai.chat.completions.create(model="mirador:quick", messages=ASK, tools=[WEATHER],
                                        tool_choice="none", max_tokens=8)
    assert not reply.choices[0].message.tool_calls and reply.choices[0].message.content
    assert reply.choices[0].finish_reason != "tool_calls"
    assert requests_seen[-1].tools == () and requests_seen[-1].format is None


def test_a_named_tool_choice_forces_that_tool(oai: openai.OpenAI) -> None:
    clock = {"type": "function", "function": {"name": "clock", "description": "The time.",
                                              "parameters": {"type": "object"}}}
    reply = oai.chat.completions.create(
        model="mirador:quick", messages=ASK, tools=[WEATHER, clock], temperature=0,
        tool_choice={"type": "function", "function": {"name": "clock"}})
    assert [c.function.name for c in reply.choices[0].message.tool_calls or ()] == ["clock"]


@pytest.mark.parametrize(("extra", "said"), [
    ({"tool_choice": "sometimes"}, "tool_choice: 'sometimes' is not a choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice: 'nope' is not one of the tools sent (get_weather)"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
     "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "strange"}}}}}]},
     "tools[0].function.parameters is not a JSON schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "string"}}}]}, "must describe an object"),
    ({"tools": [WEATHER, WEATHER]}, "two tools share a name"),
    ({"functions": [WEATHER["function"]]}, "functions: the legacy function-calling"),
    ({"response_format": {"type": "json_object"}}, "response_format: a reply is either"),
])
def test_bad_tools_and_choices_are_a_400_naming_them(oai: openai.OpenAI, extra: dict,
                                                     said: str) -> None:
    body = {"tools": [WEATHER], **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="mirador:quick", messages=ASK, **body)
    assert refused.value.status_code == 400 and said in str(refused.value)


def test_a_tool_choice_that_asks_for_a_call_without_tools_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="mirador:quick", messages=ASK, tool_choice="required")
    assert "tool_choice: 'required' asks for a call, but no tools were sent" in str(
        refused.value)


def test_ollama_bad_tool_schema_is_a_400(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/api/chat", timeout=60, json={
        "model": "mirador:quick", "messages": ASK, "stream": False,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "required": "city"}}}]})
    assert reply.status_code == 400, reply.text
    assert "tools[0].function.parameters is not a JSON schema" in reply.json()["error"]


def test_a_chain_answers_tools_with_its_final_persona(server: ServerThread,
                                                      requests_seen: list[ChatRequest]) -> None:
    reply = httpx.post(f"{server.url}/api/chat", timeout=300, json={
        "model": "mirador:duo", "messages": ASK, "stream": False, "tools": [WEATHER],
        "options": {"temperature": 0}})
    assert reply.status_code == 200, reply.text
    assert len(requests_seen) == 1  # one stage, not the chain's two
    assert "Improve the answer given" in requests_seen[0].messages[0].content


def test_show_says_tools(oclient: ollama.Client, oai: openai.OpenAI) -> None:
    assert "tools" in (oclient.show("mirador:auto").capabilities or [])
    listed = {m.id: m.model_extra for m in oai.models.list().data}
    assert "tools" in listed["mirador:quick"]["capabilities"]  # type: ignore[index]


def test_a_model_that_cannot_call_tools_is_a_clear_400(server: ServerThread,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded model's backend swapped for one without tool calls (a scripted one)."""
    manager = server.runtime.orchestrator.manager
    monkeypatch.setitem(manager.backends._backends, "llamacpp", ScriptedBackend())
    reply = httpx.post(f"{server.url}/api/chat", timeout=60, json={
        "model": "mirador:quick", "messages": ASK, "stream": False, "tools": [WEATHER]})
    assert reply.status_code == 400, reply.text
    assert "model 'mirador:quick' cannot call tools" in reply.json()["error"]
    assert "send the request without tools" in reply.json()["error"]
    shown = httpx.post(f"{server.url}/api/show", timeout=60, json={"model": "mirador:quick"})
    assert shown.json()["capabilities"] == ["completion"]


# -- passed through: Mirador's Ollama and OpenAI backends pointed at the shared server -----


@pytest.fixture(scope="module")
def relay(server: ServerThread, tmp_path_factory: pytest.TempPathFactory,
          smollm_gguf: Path) -> Iterator[ServerThread]:
    """A second server whose models `peer-ollama` and `peer-openai` are the shared server's
    `mirador:quick`, reached through Mirador's own Ollama and OpenAI backends: a real peer
    of both wire formats, which takes tools natively."""
    port = free_port()
    home = write_home(tmp_path_factory.mktemp("relay-home"), smollm_gguf, None, {"port": port},
                      config={"backends": {"ollama": {"host": server.url, "timeout": 300},
                                           "openai": {"base_url": f"{server.url}/v1",
                                                      "timeout": 300}}})
    manifest = yaml.safe_load((home / "manifest.yaml").read_text())
    manifest["models"] = [{"id": "peer-ollama", "backend": "ollama", "name": "mirador:quick"},
                          {"id": "peer-openai", "backend": "openai", "name": "mirador:quick"}]
    (home / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    thread = ServerThread(create_app(settings_for(home)), port).start()
    yield thread
    thread.stop()


@pytest.mark.parametrize("peer", ["peer-ollama", "peer-openai"])
def test_tools_pass_through_to_a_backend_that_calls_them(relay: ServerThread, peer: str,
                                                         requests_seen: list[ChatRequest]
                                                         ) -> None:
    with ollama.Client(host=relay.url, timeout=300) as client:
        reply = client.chat(model=peer, messages=ASK, tools=[get_weather],
                            options={"temperature": 0})
    assert [c.function.name for c in reply.message.tool_calls or ()] == ["get_weather"]
    offered = requests_seen[-1]  # what the shared server's model was asked, from the relay
    assert [t.name for t in offered.tools] == ["get_weather"]
    with openai.OpenAI(base_url=f"{relay.url}/v1", api_key="unused", max_retries=0,
                       timeout=300) as oai:
        history: Any = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_7", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_7", "content": RESULT}]
        answer = oai.chat.completions.create(model=peer, messages=history, tools=[WEATHER],
                                             temperature=0)
        assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls
        assert requests_seen[-1].messages[-1].content == RESULT
        with pytest.raises(openai.BadRequestError) as refused:
            oai.chat.completions.create(model=peer, messages=ASK, tools=[WEATHER],
                                        tool_choice="required")
    assert f"tool_choice: 'required' cannot be honoured by model '{peer}'" in str(refused.value)
