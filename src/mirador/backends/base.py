"""The one interface every runtime implements.

A backend streams a chat as typed events: `TextPiece`s as the model produces
them, then one `Finished` with token counts and timings. Loading, unloading
and listing what is loaded are optional extras a runtime may support.
Policy (budgets, eviction, retries) lives above backends, never in them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from mirador.catalog.manifest import LoraAdapter, ModelEntry, SamplingOptions

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    images: tuple[str, ...] = ()  # base64-encoded image files, for models that can see


@dataclass(frozen=True)
class ResponseFormat:
    """The reply must be JSON: any JSON object (`schema` None) or one matching `schema`.

    Backends honour it their own way: llama.cpp by grammar-constrained decoding, Ollama
    by its `format` field, OpenAI-compatible servers by `response_format`."""

    schema: dict[str, Any] | None = field(default=None, hash=False)
    name: str = "response"
    strict: bool = False


@dataclass(frozen=True)
class ChatRequest:
    """What a backend is asked to run."""

    model: ModelEntry
    messages: tuple[Message, ...]
    options: SamplingOptions = field(default_factory=SamplingOptions)
    loras: tuple[LoraAdapter, ...] = ()
    format: ResponseFormat | None = None


@dataclass(frozen=True)
class TextPiece:
    """Text the model produced; `tokens` is how many tokens it spans."""

    text: str
    tokens: int = 1


@dataclass(frozen=True)
class Finished:
    """The end of a stream, with what the runtime reported."""

    reason: Literal["stop", "length", "cancelled"] = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)


BackendEvent = TextPiece | Finished


@dataclass(frozen=True)
class Embedded:
    """Vectors of unit length, one per text, and the tokens the texts took."""

    vectors: list[list[float]]
    tokens: int = 0


@runtime_checkable
class Embeds(Protocol):
    """A backend that can run embedding models (manifest entries with `embedding: true`)."""

    async def embed(self, model: ModelEntry, texts: list[str], truncate: bool = True
                    ) -> Embedded:
        """One unit vector per text; a text too long for the model is cut when `truncate`,
        else a BackendError."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    size_bytes: int = 0
    backend: str = ""
    detail: str = ""


@runtime_checkable
class Backend(Protocol):
    """A runtime that can run models: llama.cpp in-process, Ollama, an OpenAI-compatible server."""

    name: str

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        """Stream the reply; closing the iterator must stop generation promptly."""
        ...

    async def load(self, model: ModelEntry) -> None:
        """Make the model ready, so the next request starts at once."""
        ...

    async def unload(self, model: ModelEntry) -> None:
        """Free what the model holds."""
        ...

    async def loaded(self) -> list[LoadedModel]:
        """What this runtime holds in memory now."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...
