"""The one interface every runtime implements.

A backend streams a chat as typed events: `TextPiece`s as the model produces
them (or `ToolCallRequest`s, when the request offers tools and the model asks
for one), then one `Finished` with token counts and timings. Beyond that, a
backend declares what else it can do in its `capabilities` (estimating a
model's memory, counting tokens, LoRA adapters per request, embeddings...);
each declared capability promises the small protocol beside it, and callers
ask through `adapters_of(backend)` and the like, never by probing attributes.
Policy (budgets, eviction, retries) lives above backends, never in them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, cast, runtime_checkable

from mirador.catalog.manifest import LoraAdapter, ModelEntry, SamplingOptions, Speculation
from mirador.errors import BackendError
from mirador.toolspec import Tool

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCallRequest:
    """The model asks for tool `name` with `arguments` (parsed JSON, not yet validated);
    `id` is the runtime's id for the call, where it gives one."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)
    id: str = ""


@dataclass(frozen=True)
class Message:
    """One turn. An assistant turn may carry the `tool_calls` it made; a "tool" turn is a
    tool's result, `tool_name` saying whose (and `tool_call_id` which call's)."""

    role: Role
    content: str
    images: tuple[str, ...] = ()  # base64-encoded image files, for models that can see
    tool_calls: tuple[ToolCallRequest, ...] = ()
    tool_name: str | None = None
    tool_call_id: str | None = None


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
    tools: tuple[Tool, ...] = ()  # tools the model may ask for (see ToolCallRequest)
    speculative: Speculation | None = None  # speculative decoding (Capabilities.speculative)
    threads: int | None = None  # CPU threads to run with (Capabilities.threads)


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


BackendEvent = TextPiece | ToolCallRequest | Finished


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


@runtime_checkable
class EstimatesMemory(Protocol):
    """A backend that can say, before loading, how many bytes a model will take."""

    def estimate_bytes(self, model: ModelEntry) -> int:
        """Bytes `model` will take once loaded (blocking: may read files)."""
        ...


@runtime_checkable
class Tokenizes(Protocol):
    """A backend that counts tokens with the model's own tokenizer."""

    async def count_tokens(self, model: ModelEntry, text: str) -> int:
        """How many tokens `text` is for `model` (may load the model)."""
        ...


@runtime_checkable
class HostsAdapters(Protocol):
    """A backend that applies LoRA adapters per request on a shared base model."""

    async def load_adapter(self, model: ModelEntry, lora: LoraAdapter) -> None:
        """Read `lora` for `model`, so requests can switch to it."""
        ...

    async def unload_adapter(self, model: ModelEntry, lora: LoraAdapter) -> None:
        """Free `lora`."""
        ...

    async def use_adapters(self, model: ModelEntry, loras: tuple[LoraAdapter, ...]) -> None:
        """Set exactly `loras` on the model now."""
        ...


@runtime_checkable
class TakesTurns(Protocol):
    """A backend that serves at most `sequences(model)` streams at once on a loaded model."""

    def sequences(self, model: ModelEntry) -> int:
        """Streams one loaded `model` serves at once."""
        ...


@runtime_checkable
class SizesContext(Protocol):
    """A backend that knows the context window (in tokens) it runs `model` with."""

    def context_size(self, model: ModelEntry) -> int:
        """The window, in tokens."""
        ...


@runtime_checkable
class Prefills(Protocol):
    """A backend that can read a prompt into a loaded model's cache ahead of the request."""

    async def prefill(self, request: ChatRequest) -> int:
        """Evaluate `request`'s prompt without generating, so a request that starts with
        the same prompt begins at once; the tokens evaluated (0: already cached)."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the `Backend` protocol, declared by the backend.

    Every flag but `in_process` promises the protocol named beside it;
    `capability_problems` says where a backend breaks its promises."""

    in_process: bool = False  # models live in this process: its resident memory measures them
    estimates_memory: bool = False  # EstimatesMemory
    counts_tokens: bool = False  # Tokenizes
    adapters: bool = False  # HostsAdapters: LoRA adapters per request on a shared base
    embeds: bool = False  # Embeds
    takes_turns: bool = False  # TakesTurns
    sizes_context: bool = False  # SizesContext
    tools: bool = False  # honours ChatRequest.tools: yields ToolCallRequest, reads "tool" turns
    speculative: bool = False  # honours ChatRequest.speculative (speculative decoding)
    threads: bool = False  # honours ChatRequest.threads (runs the request on that many threads)
    prefills: bool = False  # Prefills: a prompt read into the cache ahead of its request

    def declared(self) -> set[str]:
        """The names of the capabilities declared."""
        return {f.name for f in fields(self) if getattr(self, f.name)}


PROMISES: dict[str, type] = {
    "estimates_memory": EstimatesMemory, "counts_tokens": Tokenizes,
    "adapters": HostsAdapters, "embeds": Embeds, "takes_turns": TakesTurns,
    "sizes_context": SizesContext, "prefills": Prefills,
}
"""Each capability flag and the protocol a backend that declares it implements."""


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
    capabilities: Capabilities

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


# -- asking a backend what it declared ---------------------------------------------------

def capability_problems(backend: object) -> list[str]:
    """Where `backend` breaks what it declares: a capability without its methods, or no
    `capabilities` at all. Empty when it keeps every promise."""
    name = getattr(backend, "name", type(backend).__name__)
    declared = getattr(backend, "capabilities", None)  # a plugin's object, checked once
    if not isinstance(declared, Capabilities):
        return [f"backend '{name}' declares no capabilities; give its class "
                "`capabilities = Capabilities(...)` (mirador.backends.base)"]
    return [_broken(name, flag, PROMISES[flag]) for flag in sorted(declared.declared())
            if flag in PROMISES and not isinstance(backend, PROMISES[flag])]


def check_capabilities(backend: Backend) -> Backend:
    """`backend` itself if it keeps its declared capabilities, else a BackendError."""
    problems = capability_problems(backend)
    if problems:
        raise BackendError("; ".join(problems))
    return backend


def _broken(name: str, flag: str, protocol: type) -> str:
    methods = sorted(m for m in vars(protocol) if not m.startswith("_"))
    return (f"backend '{name}' declares capability '{flag}' but lacks {protocol.__name__}'s "
            f"{', '.join(methods)}; implement them or declare {flag}=False")


_KEEPS: dict[tuple[type, str], bool] = {}


def _keeps(backend: Backend, flag: str) -> bool:
    """Whether `backend`'s class has the methods `flag` promises (checked once per class:
    a runtime protocol check costs microseconds, and the accessors sit on hot paths)."""
    key = (type(backend), flag)
    if key not in _KEEPS:
        _KEEPS[key] = isinstance(backend, PROMISES[flag])
    return _KEEPS[key]


def _declared(backend: Backend, flag: str) -> Backend | None:
    """`backend` if it declares `flag` (and has the methods), None if it does not declare
    it, a BackendError if it declares it without the methods."""
    if not getattr(backend.capabilities, flag):
        return None
    if _keeps(backend, flag):
        return backend
    raise _lacking(backend, flag)


def _lacking(backend: Backend, flag: str) -> BackendError:
    return BackendError(_broken(backend.name, flag, PROMISES[flag]))


def memory_estimator_of(backend: Backend) -> EstimatesMemory | None:
    """The backend as an EstimatesMemory if it declares `estimates_memory`, else None."""
    return cast("EstimatesMemory | None", _declared(backend, "estimates_memory"))


def token_counter_of(backend: Backend) -> Tokenizes | None:
    """The backend as a Tokenizes if it declares `counts_tokens`, else None."""
    return cast("Tokenizes | None", _declared(backend, "counts_tokens"))


def adapters_of(backend: Backend) -> HostsAdapters | None:
    """The backend as a HostsAdapters if it declares `adapters`, else None."""
    return cast("HostsAdapters | None", _declared(backend, "adapters"))


def embedder_of(backend: Backend) -> Embeds | None:
    """The backend as an Embeds if it declares `embeds`, else None."""
    return cast("Embeds | None", _declared(backend, "embeds"))


def turns_of(backend: Backend) -> TakesTurns | None:
    """The backend as a TakesTurns if it declares `takes_turns`, else None."""
    return cast("TakesTurns | None", _declared(backend, "takes_turns"))


def context_sizer_of(backend: Backend) -> SizesContext | None:
    """The backend as a SizesContext if it declares `sizes_context`, else None."""
    return cast("SizesContext | None", _declared(backend, "sizes_context"))


def prefiller_of(backend: Backend) -> Prefills | None:
    """The backend as a Prefills if it declares `prefills`, else None."""
    return cast("Prefills | None", _declared(backend, "prefills"))
