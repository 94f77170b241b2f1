"""Bodies of Mirador's native API, and the JSON schemas of the events its SSE stream carries.

Request bodies forbid unknown fields, so a typo is a 400 naming the field, not a
silent default. The SSE event schemas come from the event dataclasses themselves,
so the OpenAPI description cannot drift from what `mirador ask --json` prints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    StageEnd,
    StageStart,
    Token,
    ToolCall,
    ToolResult,
)

# Letters, digits, '-' and '_': a session id names a file under the home.
SESSION_ID = r"^[A-Za-z0-9_-]{1,64}$"


def valid_text(value: Any) -> Any:
    """`value`, if every string in it (keys too) is valid Unicode; ValueError otherwise.

    JSON may carry lone surrogates ("\\udcff") that no encoder can write: refused here,
    they cannot reach a tokenizer or a file."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the text has invalid Unicode at character {exc.start} (a lone "
                             "surrogate); send valid UTF-8") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            valid_text(key)
            valid_text(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            valid_text(item)
    return value


class _Checked(BaseModel):
    """Every request body: its strings must be valid Unicode."""

    @field_validator("*", mode="after")
    @classmethod
    def _unicode(cls, value: Any) -> Any:
        return valid_text(value)


class Strict(_Checked):
    model_config = ConfigDict(extra="forbid")


class Lenient(_Checked):
    """Bodies of the Ollama and OpenAI APIs: their clients send many optional fields, so
    unknown ones are ignored (as those servers do) rather than breaking a client that is
    one release ahead."""

    model_config = ConfigDict(extra="ignore")


class Turn(Strict):
    role: Literal["user", "assistant"]
    content: str


class AskBody(Strict):
    """A question, and optionally how to answer it."""

    query: str = Field(min_length=1, description="The question.")
    stages: list[str] | None = Field(default=None, description="Stage names to run, "
                                     "overriding the routing.")
    model: str | None = Field(default=None, description="Run every stage on this model.")
    chain: str | None = Field(default=None, description="Run this chain of personas.")
    session_id: str | None = Field(default=None, pattern=SESSION_ID, description="Continue "
                                   "this session: 1 to 64 letters, digits, '-' or '_'.")
    namespace: str = "default"
    history: list[Turn] = Field(default=[], description="Earlier turns of this conversation.")
    stream: bool = Field(default=True, description="False: wait and return the `done` event.")


class RateBody(Strict):
    answer_id: str | None = Field(default=None, description="None: the latest answer.")
    rating: int = Field(ge=1, le=5)
    note: str | None = None


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    """Every native error: what went wrong and what to do."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    home_id: str = Field(description="A fingerprint of the Mirador home served (not its "
                         "path): the CLI uses the server only for its own home.")
    uptime: float
    active: int = Field(description="Answers being generated now.")
    queued: int = Field(description="Answers waiting for a slot.")
    served: int = Field(description="Answers started since the server started.")
    max_active: int
    max_queued: int
    loaded: list[str] = Field(description="Models held in memory.")


class ModelInfo(BaseModel):
    id: str
    backend: str
    source: str
    size: int
    loaded: bool


class PersonaInfo(BaseModel):
    id: str
    model: str
    description: str


class ChainInfo(BaseModel):
    id: str
    description: str
    steps: list[str]


class ModelsList(BaseModel):
    models: list[ModelInfo]
    personas: list[PersonaInfo]
    chains: list[ChainInfo]
    names: list[str] = Field(description="Model names Ollama and OpenAI clients may use.")


class LoadedInfo(BaseModel):
    id: str
    backend: str
    size: int
    detail: str


class PsList(BaseModel):
    models: list[LoadedInfo]


class LoadResult(BaseModel):
    id: str
    loaded: bool
    seconds: float


class RateResult(BaseModel):
    answer_id: str
    rating: int
    note: str | None = None
    query_type: str = Field(description="The kind of query the rated answer was.")
    chain: str | None = Field(description="The chain that answered; None for named stages.")


class MemoryItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str


class MemoryList(BaseModel):
    memories: list[MemoryItem]


class ForgetResult(BaseModel):
    id: str
    forgotten: bool


class ForgetAllResult(BaseModel):
    forgotten: dict[str, int]  # memories, turns, answers


EVENT_CLASSES = (Ack, StageStart, Token, ToolCall, ToolResult, ErrorEvent, StageEnd, Done)


def event_schema_name(cls: type[Any]) -> str:
    """`stage_start` -> `StageStartEvent`: the event's name in the OpenAPI components."""
    return "".join(part.capitalize() for part in str(cls.type).split("_")) + "Event"


def event_schemas(ref_template: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """JSON schemas for each SSE event by class name, plus the definitions they share."""
    schemas: dict[str, dict[str, Any]] = {}
    shared: dict[str, Any] = {}
    for cls in EVENT_CLASSES:
        schema = TypeAdapter(cls).json_schema(ref_template=ref_template)
        shared.update(schema.pop("$defs", {}))
        schema["properties"] = {"type": {"const": cls.type}, **schema["properties"]}
        schema["required"] = ["type", *schema.get("required", [])]
        schema["title"] = event_schema_name(cls)
        schemas[schema["title"]] = schema
    return schemas, shared
