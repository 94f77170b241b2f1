"""The clients people use, unmodified, against the real server: simonw's `llm` with
`llm-ollama` (as a subprocess, configured by OLLAMA_HOST as its users do), LangChain's
ChatOllama, ChatOpenAI and OllamaEmbeddings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.server.conftest import ServerThread

LLM = str(Path(sys.executable).with_name("llm"))


class City(BaseModel):
    """A city and the country it is in."""

    city: str = Field(max_length=40)
    country: str = Field(max_length=40)


QUESTION = "Name a city in France and its country."


def run_llm(server: ServerThread, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "OLLAMA_HOST": server.url, "LLM_USER_PATH": str(tmp_path / "llm")}
    done = subprocess.run([LLM, *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_llm_cli_chats_with_system_and_options(server: ServerThread, tmp_path: Path) -> None:
    models = run_llm(server, tmp_path, "models", "list")
    assert "ollama/mirador:quick" in models
    out = run_llm(server, tmp_path, "-m", "ollama/mirador:quick", "-s", "Answer briefly.",
                  "-o", "temperature", "0.2", "-o", "num_predict", "20", "--no-log",
                  "What is a good breakfast?")
    assert out.strip() and "──" not in out


def test_llm_cli_schema_gives_json(server: ServerThread, tmp_path: Path) -> None:
    out = run_llm(server, tmp_path, "-m", "ollama/mirador:quick", "--schema", "city, country",
                  "--no-log", QUESTION)
    assert set(json.loads(out)) == {"city", "country"}


def test_llm_cli_embeds(server: ServerThread, tmp_path: Path) -> None:
    out = run_llm(server, tmp_path, "embed", "-m", "ollama/all-minilm", "-c", "hello")
    assert len(json.loads(out)) == 384


@pytest.fixture
def chat_ollama(server: ServerThread) -> Iterator[ChatOllama]:
    chat = ChatOllama(model="mirador:quick", base_url=server.url, temperature=0)
    yield chat
    chat._client.close()  # LangChain never closes its ollama client's connections


@pytest.fixture
def chat_openai(server: ServerThread) -> Iterator[ChatOpenAI]:
    with httpx.Client(timeout=300) as http:  # closed here: ChatOpenAI never closes its own
        yield ChatOpenAI(model="mirador:quick", base_url=f"{server.url}/v1",
                         api_key="unused", temperature=0, http_client=http)  # type: ignore[arg-type]


def test_chat_ollama_invoke_and_stream(chat_ollama: ChatOllama) -> None:
    assert chat_ollama.invoke("What is a good breakfast?").content
    pieces = [str(p.content) for p in chat_ollama.stream("What is a good breakfast?")]
    assert len([p for p in pieces if p]) >= 2


def test_chat_openai_invoke_and_stream(chat_openai: ChatOpenAI) -> None:
    assert chat_openai.invoke("What is a good breakfast?").content
    pieces = [str(p.content) for p in chat_openai.stream("What is a good breakfast?")]
    assert len([p for p in pieces if p]) >= 2


def test_chat_ollama_structured_output_is_a_valid_object(chat_ollama: ChatOllama) -> None:
    city = chat_ollama.with_structured_output(City).invoke(QUESTION)
    assert isinstance(city, City)


def test_chat_openai_structured_output_is_a_valid_object(chat_openai: ChatOpenAI) -> None:
    city = chat_openai.with_structured_output(City).invoke(QUESTION)
    assert isinstance(city, City)


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def test_bind_tools_gets_a_tool_call_then_answers_from_the_result(
        chat_ollama: ChatOllama, chat_openai: ChatOpenAI) -> None:
    for chat in (chat_ollama, chat_openai):
        bound = chat.bind_tools([weather])
        asked = HumanMessage("What is the weather in Paris?")
        called = bound.invoke([asked])
        assert isinstance(called, AIMessage)
        assert [c["name"] for c in called.tool_calls] == ["weather"], chat
        assert "city" in called.tool_calls[0]["args"]
        result = ToolMessage(weather.invoke(called.tool_calls[0]["args"]),
                             tool_call_id=called.tool_calls[0]["id"] or "")
        answer = bound.invoke([asked, called, result])
        assert not answer.tool_calls and str(answer.content).strip(), chat


def test_ollama_embeddings(server: ServerThread) -> None:
    embeddings = OllamaEmbeddings(model="all-minilm", base_url=server.url)
    try:
        rows = embeddings.embed_documents(["a cat", "a kitten"])
        assert len(rows) == 2 and len(rows[0]) == 384
        assert len(embeddings.embed_query("a dog")) == 384
    finally:
        embeddings._client.close()  # type: ignore[union-attr]
