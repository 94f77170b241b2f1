"""Models served by a running Ollama, through the official `ollama` AsyncClient.

The host comes from `backends.ollama.host` in config.yaml, else `$OLLAMA_HOST`,
else http://127.0.0.1:11434. A manifest entry's `name` is the Ollama tag.
Loading is Ollama's preload (an empty prompt with keep_alive), unloading is
keep_alive 0, and `loaded()` is `/api/ps`. Closing a stream closes its HTTP
response, which is how Ollama learns to stop generating.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

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
    ToolCallRequest,
)
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.errors import BackendError, BackendUnavailableError, ModelNotFoundError
from mirador.settings import Settings

if TYPE_CHECKING:
    import ollama

# SamplingOptions field -> Ollama's option name.
OPTION_NAMES = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                "repeat_penalty": "repeat_penalty", "max_tokens": "num_predict",
                "stop": "stop", "seed": "seed"}
_DURATIONS = {"total_duration": "seconds", "load_duration": "load_seconds",
              "prompt_eval_duration": "prompt_seconds", "eval_duration": "eval_seconds"}


class OllamaBackend:
    """Runs models on an Ollama server."""

    name = "ollama"
    capabilities = Capabilities(embeds=True, tools=True)  # the server holds the memory

    def __init__(self, settings: Settings) -> None:
        self.host = settings.ollama_host
        self._config = settings.config.backends.ollama
        self._client: ollama.AsyncClient | None = None

    def _api(self) -> ollama.AsyncClient:
        if self._client is None:
            from ollama import AsyncClient

            self._client = AsyncClient(host=self.host, timeout=self._config.timeout)
        return self._client

    def keep_alive(self, model: ModelEntry) -> float | str:
        """How long Ollama keeps `model` loaded: the manifest's seconds, else the config's."""
        return model.keep_alive if model.keep_alive is not None else self._config.keep_alive

    # -- generation --------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        tag = _tag(request.model)
        final = None
        with self._translated(tag, request.model):
            stream = await self._api().chat(
                model=tag, stream=True, keep_alive=self.keep_alive(request.model),
                messages=[_message(m) for m in request.messages],
                options=ollama_options(request.options), format=ollama_format(request.format),
                tools=tool_calls.wire_tools(request.tools) or None)
            try:
                async for part in stream:
                    if part.message.content:
                        yield TextPiece(part.message.content)
                    for call in part.message.tool_calls or ():
                        yield ToolCallRequest(name=call.function.name,
                                              arguments=dict(call.function.arguments or {}))
                    if part.done:
                        final = part
            finally:
                await stream.aclose()  # type: ignore[attr-defined]  # ends the HTTP response
        if final is None:
            raise BackendError(f"Ollama at {self.host} ended the answer from '{tag}' before it "
                               "was done; check the Ollama server's log")
        yield _finished(final)

    async def embed(self, model: ModelEntry, texts: list[str], truncate: bool = True
                    ) -> Embedded:
        """Ollama's /api/embed for an embedding model of the manifest."""
        tag = _tag(model)
        with self._translated(tag, model):
            reply = await self._api().embed(model=tag, input=texts, truncate=truncate,
                                            keep_alive=self.keep_alive(model))
        return Embedded(vectors=[list(map(float, v)) for v in reply.embeddings],
                        tokens=int(reply.prompt_eval_count or 0))

    # -- loading -----------------------------------------------------------------

    async def load(self, model: ModelEntry) -> None:
        """Preload: an empty prompt makes Ollama load the model and keep it for keep_alive."""
        tag = _tag(model)
        with self._translated(tag, model):
            await self._api().generate(model=tag, prompt="", keep_alive=self.keep_alive(model))

    async def unload(self, model: ModelEntry) -> None:
        """keep_alive 0 makes Ollama unload the model now; one Ollama lacks is already gone."""
        tag = _tag(model)
        with contextlib.suppress(ModelNotFoundError), self._translated(tag, model):
            await self._api().generate(model=tag, prompt="", keep_alive=0)

    async def loaded(self) -> list[LoadedModel]:
        """What Ollama holds in memory (`/api/ps`), by Ollama tag."""
        with self._translated("", None):
            running = await self._api().ps()
        return [LoadedModel(model_id=m.model or m.name or "?", size_bytes=int(m.size or 0),
                            backend=self.name, detail=_expiry(m.expires_at))
                for m in running.models]

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # -- errors --------------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, tag: str, model: ModelEntry | None) -> Iterator[None]:
        """Ollama's and httpx's exceptions, as Mirador errors that say what to do."""
        import httpx
        from ollama import ResponseError
        from pydantic import ValidationError

        try:
            yield
        except ResponseError as exc:
            raise self._response_error(exc, tag, model) from None
        except (ConnectionError, httpx.ConnectError) as exc:
            raise BackendUnavailableError(
                f"Ollama is not reachable at {self.host}; start it with 'ollama serve' or set "
                "OLLAMA_HOST / backends.ollama.host in ~/.mirador/config.yaml") from exc
        except httpx.TimeoutException as exc:
            raise BackendError(f"Ollama at {self.host} did not answer within "
                               f"{self._config.timeout:g}s; raise backends.ollama.timeout in "
                               "~/.mirador/config.yaml if the model is slow to load") from exc
        except (httpx.HTTPError, json.JSONDecodeError, ValidationError) as exc:
            raise BackendError(f"the connection to Ollama at {self.host} broke mid-answer "
                               f"({type(exc).__name__}: {exc}); is Ollama still running?") from exc

    def _response_error(self, exc: Any, tag: str, model: ModelEntry | None) -> Exception:
        if exc.status_code == 404 and "not found" in str(exc.error):
            fix = "'ollama list' shows the ones it has"
            if model and model.id not in (tag, f"ollama:{tag}"):  # a manifest entry
                fix = f"or fix 'name' of model '{model.id}' in ~/.mirador/manifest.yaml"
            return ModelNotFoundError(
                f"Ollama at {self.host} has no model '{tag}'; run 'ollama pull {tag}' ({fix})")
        status = f" (HTTP {exc.status_code})" if exc.status_code > 0 else ""
        return BackendError(f"Ollama at {self.host} failed on '{tag}'{status}: {exc.error}")


def ollama_options(options: SamplingOptions) -> dict[str, Any]:
    """Mirador's sampling options under Ollama's names; unset ones are left to Ollama."""
    values = options.model_dump(exclude_none=True)
    return {OPTION_NAMES[key]: value for key, value in values.items() if key in OPTION_NAMES}


def _message(message: Message) -> dict[str, Any]:
    """A message as Ollama's chat takes it: images as base64 strings beside the text."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.images:
        wire["images"] = list(message.images)
    if message.tool_calls:
        wire["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}}
                              for c in message.tool_calls]
    if message.tool_name:
        wire["tool_name"] = message.tool_name
    return wire


def ollama_format(fmt: ResponseFormat | None) -> Literal["json"] | dict[str, Any] | None:
    """A Mirador response format as Ollama's `format` field: "json" or a JSON schema."""
    if fmt is None:
        return None
    return fmt.schema if fmt.schema is not None else "json"


def _tag(model: ModelEntry) -> str:
    return model.name or model.id


def _finished(final: Any) -> Finished:
    timings = {label: getattr(final, key) / 1e9 for key, label in _DURATIONS.items()
               if getattr(final, key) is not None}
    return Finished(reason="length" if final.done_reason == "length" else "stop",
                    prompt_tokens=final.prompt_eval_count or 0,
                    completion_tokens=final.eval_count or 0, timings=timings)


def _expiry(expires_at: Any) -> str:
    return f"until {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
