"""Structured output: Ollama `format` and OpenAI `response_format` give JSON that validates.

The embedded model is constrained by a llama.cpp grammar, so even a tiny model's reply
parses and matches the schema; these tests would fail on prose or stage headers."""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest
from pydantic import BaseModel, Field

from mirador.backends import ChatRequest
from tests.server.conftest import ServerThread

QUESTION = [{"role": "user", "content": "Name a city in France and its country."}]


class City(BaseModel):
    city: str = Field(max_length=40)
    country: str = Field(max_length=40)


CITY_SCHEMA = City.model_json_schema()


def test_ollama_schema_on_a_staged_model_is_one_valid_object(oclient: ollama.Client) -> None:
    reply = oclient.chat(model="mirador:auto", messages=QUESTION, format=CITY_SCHEMA,
                         stream=False, options={"temperature": 0})
    City.model_validate_json(reply.message.content)  # no headers, no prose: one stage's JSON
    assert reply.done_reason in ("stop", None)


def test_ollama_format_json_streams_an_object(oclient: ollama.Client) -> None:
    parts = list(oclient.generate(model="mirador:quick", prompt="Describe a cat.",
                                  format="json", stream=True, options={"temperature": 0}))
    assert parts[-1].done and len(parts) > 3
    assert isinstance(json.loads("".join(p.response for p in parts)), dict)


def test_openai_json_schema_strict_on_a_chain(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="mirador:duo", messages=QUESTION,  # type: ignore[arg-type]
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True}})
    City.model_validate_json(reply.choices[0].message.content or "")


def test_openai_schema_holds_even_random_weights(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"word": {"type": "string", "maxLength": 8}},
              "required": ["word"]}
    reply = oai.chat.completions.create(
        model="tiny", messages=QUESTION,  # type: ignore[arg-type]
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}})
    assert set(json.loads(reply.choices[0].message.content or "")) == {"word"}


def test_openai_parse_returns_a_validated_object(oai: openai.OpenAI) -> None:
    parsed = oai.beta.chat.completions.parse(model="mirador:quick", messages=QUESTION,  # type: ignore[arg-type]
                                             response_format=City)
    assert isinstance(parsed.choices[0].message.parsed, City)


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/api/chat", {"format": "xml"}, "format"),
    ("/api/chat", {"format": {"type": "bogus"}}, "schema"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema"}},
     "response_format.json_schema.schema"),
    ("/v1/chat/completions", {"response_format": {"type": "yaml"}}, "response_format"),
])
def test_formats_it_cannot_honour_are_a_400(server: ServerThread, path: str, body: dict,
                                            says: str) -> None:
    reply = httpx.post(f"{server.url}{path}", timeout=60,
                       json={"model": "mirador:quick", "messages": QUESTION, "stream": False,
                             **body})
    assert reply.status_code == 400, reply.text
    assert says in reply.text


def test_the_clients_system_prompt_is_sent_once(oclient: ollama.Client,
                                                requests_seen: list[ChatRequest]) -> None:
    wish = "Answer in French, please."
    oclient.chat(model="mirador:quick", format="json", stream=False,
                 options={"temperature": 0, "num_predict": 40},
                 messages=[{"role": "system", "content": wish}, *QUESTION])
    assert len(requests_seen) == 1
    system = requests_seen[0].messages[0]
    assert system.role == "system" and system.content.count(wish) == 1, system.content
