"""Models behind an OpenAI-compatible server (llama-server, LM Studio, vLLM, llama_cpp.server).

Through the official `openai` AsyncClient, at `backends.openai.base_url` from
config.yaml. A manifest entry's `name` is the model name the server knows.
Such servers load and unload models themselves, so `load` only checks that
the server answers, `unload` does nothing and `loaded` reports nothing.

Token counts come from the stream's usage chunk when the server sends one
(`stream_options.include_usage`); a server that rejects that option is asked
again without it, and the pieces are counted instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from mirador.backends import tool_calls
from mirador.backends.base import (
    BackendEvent,
    Capabilities,
    ChatRequest,
    Embedded,
    Finished,
    LoadedModel,
    Message,
    ResponseFormat,
    TextPiece,
)
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.errors import BackendError, BackendUnavailableError, ModelNotFoundError
from mirador.settings import Settings

if TYPE_CHECKING:
    import openai

# SamplingOptions fields the OpenAI chat API has, under the same names.
OPTION_NAMES = ("temperature", "top_p", "max_tokens", "stop", "seed")


class OpenAIBackend:
    """Runs models on a server that speaks OpenAI's chat completions API."""

    name = "openai"
    capabilities = Capabilities(embeds=True, tools=True)  # the server holds the memory

    def __init__(self, settings: Settings) -> None:
        self._config = settings.config.backends.openai
        self.base_url = self._config.base_url
        self._client: openai.AsyncOpenAI | None = None
        self._include_usage = True  # until the server says it does not know stream_options

    def _api(self) -> openai.AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI

            # Retries are policy, which lives above backends.
            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self._config.api_key,
                                       timeout=self._config.timeout, max_retries=0)
        return self._client

    # -- generation --------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        name = _name(request.model)
        with self._translated(name, request.model, started=False):
            stream = await self._open(name, request)
        pieces, usage, reason = 0, None, "stop"
        calls = tool_calls.CallFragments()  # arguments arrive in fragments, by index
        async with stream:  # closing it closes the HTTP response, so the server stops
            with self._translated(name, request.model, started=True):
                async for chunk in stream:
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        reason = choice.finish_reason or reason
                        calls.feed(choice.delta.tool_calls or ())
                        if choice.delta.content:
                            pieces += 1
                            yield TextPiece(choice.delta.content)
        for call in calls.requests():
            yield call
        yield Finished(reason="length" if reason == "length" else "stop",
                       prompt_tokens=usage.prompt_tokens if usage else 0,
                       completion_tokens=usage.completion_tokens if usage else pieces)

    async def _open(self, name: str, request: ChatRequest) -> Any:
        """Start the stream, asking for usage unless the server has refused that before."""
        from openai import BadRequestError, UnprocessableEntityError

        kwargs: dict[str, Any] = {
            "model": name, "stream": True, **openai_options(request.options),
            "messages": [_message(m) for m in request.messages]}
        if request.format is not None:
            kwargs["response_format"] = response_format(request.format)
        if request.tools:
            kwargs["tools"] = tool_calls.wire_tools(request.tools)
        if self._include_usage:
            try:
                return await self._api().chat.completions.create(
                    **kwargs, stream_options={"include_usage": True})
            except (BadRequestError, UnprocessableEntityError) as exc:
                if "stream_options" not in str(exc):
                    raise
                self._include_usage = False
        return await self._api().chat.completions.create(**kwargs)

    async def embed(self, model: ModelEntry, texts: list[str], truncate: bool = True
                    ) -> Embedded:
        """The server's /v1/embeddings for an embedding model of the manifest (`truncate`
        is the server's business: OpenAI's API has no such field)."""
        name = _name(model)
        with self._translated(name, model, started=False):
            reply = await self._api().embeddings.create(model=name, input=texts,
                                                        encoding_format="float")
        rows = sorted(reply.data, key=lambda d: d.index)
        return Embedded(vectors=[list(map(float, d.embedding)) for d in rows],
                        tokens=int(reply.usage.prompt_tokens) if reply.usage else 0)

    # -- loading -----------------------------------------------------------------

    async def load(self, model: ModelEntry) -> None:
        """The server loads models itself; this only checks that it answers (GET /models)."""
        with self._translated(_name(model), model, started=False):
            await self._api().models.list()

    async def unload(self, model: ModelEntry) -> None:
        """Nothing to do: the server decides what it keeps loaded."""

    async def loaded(self) -> list[LoadedModel]:
        """Nothing: the OpenAI API cannot say what a server holds in memory."""
        return []

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # -- errors --------------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, name: str, model: ModelEntry, *, started: bool) -> Iterator[None]:
        """openai's exceptions as Mirador errors; `started`: the answer was already streaming."""
        import openai

        try:
            yield
        except openai.APITimeoutError as exc:
            raise BackendError(f"the server at {self.base_url} did not answer within "
                               f"{self._config.timeout:g}s; raise backends.openai.timeout in "
                               "~/.mirador/config.yaml if the model is slow") from exc
        except openai.APIConnectionError as exc:
            if started:
                raise BackendError(f"the connection to {self.base_url} broke mid-answer "
                                   f"({exc.__cause__ or exc}); is the server still running?"
                                   ) from exc
            raise BackendUnavailableError(
                f"no OpenAI-compatible server answers at {self.base_url}; start it (for "
                "example 'llama-server -m MODEL.gguf --port 8080') or set "
                "backends.openai.base_url in ~/.mirador/config.yaml") from exc
        except openai.NotFoundError as exc:
            entry = (f", fix 'name' of model '{model.id}' in ~/.mirador/manifest.yaml"
                     if model.id not in (name, f"openai:{name}") else "")
            raise ModelNotFoundError(
                f"the server at {self.base_url} has no model '{name}' ({_said(exc)}); see the "
                f"names it knows at {self.base_url.rstrip('/')}/models{entry}, or check that "
                "backends.openai.base_url ends in /v1") from None
        except openai.APIStatusError as exc:
            raise BackendError(f"the server at {self.base_url} refused '{name}' "
                               f"(HTTP {exc.status_code}): {_said(exc)}") from None
        except openai.APIError as exc:
            raise BackendError(f"the server at {self.base_url} failed on '{name}': {exc.message}"
                               ) from None


def openai_options(options: SamplingOptions) -> dict[str, Any]:
    """The sampling options the OpenAI chat API knows; the others are left out."""
    values = options.model_dump(exclude_none=True)
    return {key: values[key] for key in OPTION_NAMES if key in values}


def _message(message: Message) -> dict[str, Any]:
    """A message as OpenAI's chat takes it: with images, a list of text and image parts
    (each image inline as a data: URL)."""
    if message.role == "tool":
        return {"role": "tool", "content": message.content,
                "tool_call_id": message.tool_call_id or message.tool_name or ""}
    if message.tool_calls:
        return {"role": "assistant", "content": message.content or None, "tool_calls": [
            {"id": c.id or f"call_{i}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for i, c in enumerate(message.tool_calls)]}
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": data_url(image)}}
              for image in message.images]
    return {"role": message.role, "content": parts}


# The first bytes of each image format, and its media type.
_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"))


def data_url(image: str) -> str:
    """A base64 image file as a data: URL with its media type."""
    head = base64.b64decode(image[:16] + "=" * (-len(image[:16]) % 4), validate=False)
    kind = next((media for magic, media in _MAGIC if head.startswith(magic)), "image/png")
    return f"data:{kind};base64,{image}"


def response_format(fmt: ResponseFormat) -> dict[str, Any]:
    """A Mirador response format as OpenAI's `response_format` field."""
    if fmt.schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema",
            "json_schema": {"name": fmt.name, "schema": fmt.schema, "strict": fmt.strict}}


def _name(model: ModelEntry) -> str:
    return model.name or model.id


def _said(exc: Any) -> str:
    """The server's own error message, without the SDK's wrapping."""
    body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else exc.body
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail")
    return str(body or exc.message)
