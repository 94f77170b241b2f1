"""Structured output: Ollama's `format` and OpenAI's `response_format`, honoured or refused.

    Ollama `format`                 OpenAI `response_format`             Mirador
    absent, ""                      absent, {"type": "text"}             prose, as usual
    "json"                          {"type": "json_object"}              any JSON object
    {JSON schema}                   {"type": "json_schema",              JSON matching the schema
                                     "json_schema": {"schema": ...}}
    any other string                any other type                       400 naming the field

A structured answer is one stage: the target's final persona (the last step of a chain,
the last configured stage of `mirador:auto`, the first of `mirador:quick`, or the named
model itself) with its system prompt and options, its decoding constrained: llama.cpp
by a grammar built from the schema, Ollama by its `format`, OpenAI-compatible servers by
`response_format`. Earlier stages would only write prose the final one must rewrite as
JSON, so they are skipped.
Cut JSON is not JSON, so the stage gets at least `MIN_TOKENS` unless the client set a limit.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import Field

from mirador.backends import ResponseFormat
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage, Overrides, select_stages
from mirador.server.errors import BadRequestError
from mirador.server.options import Sampling
from mirador.server.runtime import AnswerRequest
from mirador.server.schemas import Lenient

MIN_TOKENS = 256


def from_ollama(value: str | dict[str, Any] | None) -> ResponseFormat | None:
    """Ollama's `format` field as a ResponseFormat (None: prose)."""
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat()
    if isinstance(value, dict):
        return ResponseFormat(schema=_object_schema(value, "format"))
    raise BadRequestError(f"format: {value!r} is not a format; send \"json\" or a JSON schema "
                          "object (or leave it out for prose)")


class JsonSchemaSpec(Lenient):
    """OpenAI's `response_format.json_schema`."""

    name: str = Field(default="response", max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")  # shadows BaseModel
    strict: bool | None = False


class ResponseFormatBody(Lenient):
    """OpenAI's `response_format`."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    def resolved(self) -> ResponseFormat | None:
        """The format asked for (None: prose); a 400 when json_schema lacks its schema."""
        if self.type == "text":
            return None
        if self.type == "json_object":
            return ResponseFormat()
        if self.json_schema is None or self.json_schema.schema_ is None:
            raise BadRequestError("response_format.json_schema.schema is missing; send "
                                  '{"type": "json_schema", "json_schema": {"name": "...", '
                                  '"schema": {...}}}')
        schema = _object_schema(self.json_schema.schema_, "response_format.json_schema.schema")
        return ResponseFormat(schema=schema, name=self.json_schema.name,
                              strict=bool(self.json_schema.strict))


def _object_schema(schema: dict[str, Any], where: str) -> dict[str, Any]:
    if not schema:
        raise BadRequestError(f"{where} is an empty schema; send a JSON schema such as "
                              '{"type": "object", "properties": {...}}')
    return schema


def constrained(orchestrator: Orchestrator, request: AnswerRequest, fmt: ResponseFormat,
                sampling: Sampling, system: str | None = None) -> AnswerRequest:
    """`request` as one constrained stage: its final persona, answering in JSON.

    The persona's system prompt comes first, then the client's (once: it leaves the
    request's overrides), then a line asking for JSON; the orchestrator leaves out the
    persona's examples and stop strings for a constrained stage. The client's
    temperature and token limit win; without a limit the stage gets at least MIN_TOKENS."""
    stage = final_stage(orchestrator, request)
    persona = orchestrator.manifest.resolve(stage.persona)
    _check_schema(persona.model.backend, fmt)
    own = stage.system_prompt or persona.system
    parts = (own, system if system != own else None, _hint(fmt))
    tokens = sampling.max_tokens
    if tokens is None:
        tokens = max(stage.max_tokens or persona.options.max_tokens or 0, MIN_TOKENS)
    wished = sampling.options.temperature
    temperature = stage.temperature if wished is None else wished
    one = dataclasses.replace(stage, format=fmt, max_tokens=tokens,
                              system_prompt="\n\n".join(p for p in parts if p),
                              temperature=temperature)
    return dataclasses.replace(request, stages=[one], chain=None,
                               overrides=_without_system(request.overrides))


def _without_system(overrides: Overrides | None) -> Overrides | None:
    """The client's system prompt is in the stage's own now: not added a second time."""
    return None if overrides is None else dataclasses.replace(overrides, system=None)


def final_stage(orchestrator: Orchestrator, request: AnswerRequest) -> ModelStage:
    """The stage that would have given the answer's last word."""
    if request.chain:
        return orchestrator.chain_stages(request.chain)[-1]
    stages = list(request.stages or [])
    if stages and isinstance(stages[-1], ModelStage):
        return stages[-1]
    if stages:
        return select_stages(orchestrator.stages, [str(s) for s in stages])[-1]
    return orchestrator.stages[-1]


def _hint(fmt: ResponseFormat) -> str:
    """Told to the model too: a grammar keeps the reply valid, the hint keeps it sensible."""
    if fmt.schema is None:
        return "Reply with one JSON object only."
    return ("Reply with one JSON object only, matching this JSON schema:\n"
            + json.dumps(fmt.schema, ensure_ascii=False))


def _check_schema(backend: str, fmt: ResponseFormat) -> None:
    """A schema llama.cpp cannot turn into a grammar is a 400 now, not a failed stage later."""
    if backend != "llamacpp" or fmt.schema is None:
        return
    from mirador.backends.llamacpp import json_grammar

    try:
        json_grammar(fmt)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
