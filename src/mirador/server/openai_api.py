"""OpenAI's chat completions API, so the `openai` libraries and OpenAI-style tools just work.

/v1/chat/completions answers with one `chat.completion` object, or with
`"stream": true` as Server-Sent Events of `chat.completion.chunk`s ending in
`data: [DONE]` (and a usage chunk first when `stream_options.include_usage`).
/v1/models lists the same names as Ollama's /api/tags. Model names and how
stages appear as text: see `compat.py`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from mirador.errors import AllStagesFailedError
from mirador.orchestration.events import Done
from mirador.server import compat, embed_api, tasks
from mirador.server.native import Runtime
from mirador.server.options import Sampling, capped
from mirador.server.runtime import AnswerStream, ServerRuntime
from mirador.server.schemas import Lenient
from mirador.server.streaming import AnswerResponse, failure_message, sse_data, unless_gone
from mirador.server.structured import ResponseFormatBody

router = APIRouter(prefix="/v1", tags=["openai"])


class ContentPart(Lenient):
    type: str
    text: str = ""


class ChatMessage(Lenient):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(Lenient):
    include_usage: bool = False


class CompletionBody(Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormatBody | None = None

    def sampling(self, cap: int) -> Sampling:
        """Temperature and the token limit, capped at `cap` (server.max_tokens)."""
        return Sampling(temperature=self.temperature,
                        max_tokens=capped(self.max_completion_tokens or self.max_tokens, cap))


@router.post("/chat/completions")
async def chat_completions(body: CompletionBody, rt: Runtime, request: Request) -> Any:
    """A chat completion: every stage streams in turn (or only the final one; see config)."""
    return await unless_gone(request, _complete(body, rt))


async def _complete(body: CompletionBody, rt: ServerRuntime) -> Any:
    target = compat.resolve_target(rt.orchestrator, body.model)
    query, system = compat.chat_query([(m.role, m.text()) for m in body.messages])
    await compat.check_fits(rt.orchestrator, compat.target_models(rt.orchestrator, target),
                            query, system)
    sampling = body.sampling(rt.settings.config.server.max_tokens)
    request = compat.build_request(rt.orchestrator, target, query, system, sampling)
    fmt = body.response_format.resolved() if body.response_format else None
    request = tasks.shaped(rt.orchestrator, target, query, request, fmt, sampling, system)
    started = time.perf_counter()
    answer = await rt.answer(request)
    view = compat.TextView(mode=rt.settings.config.server.compat_stages)
    reply = _Reply(id=f"chatcmpl-{answer.ack.answer_id if answer.ack else 'x'}",
                   model=target.name, created=int(time.time()))
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return AnswerResponse(answer, reply.stream(answer, view, query, started, usage),
                              "text/event-stream")
    return await reply.whole(answer, view, query, started)


class _Reply:
    def __init__(self, id: str, model: str, created: int) -> None:
        self.id, self.model, self.created = id, model, created

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices, **extra}

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}])

    async def stream(self, answer: AnswerStream, view: compat.TextView, query: Any,
                     started: float, include_usage: bool) -> AsyncIterator[bytes]:
        yield sse_data(self._delta({"role": "assistant", "content": ""}))
        try:
            async for event in answer:
                if text := view.feed(event):
                    yield sse_data(self._delta({"content": text}))
                if isinstance(event, Done):
                    if event.status == "error":
                        raise AllStagesFailedError(event.error or "every stage failed")
                    yield sse_data(self._delta({}, "stop"))
                    if include_usage:
                        use = compat.usage(event, view.ends, query, time.perf_counter() - started)
                        yield sse_data(self._chunk([], usage=_usage(use)))
        except Exception as exc:  # the stream has started: end it with an error object
            yield sse_data({"error": {"message": failure_message(exc), "type": "server_error",
                                      "param": None, "code": None}})
            return
        yield sse_data("[DONE]")

    async def whole(self, answer: AnswerStream, view: compat.TextView, query: Any,
                    started: float) -> dict[str, Any]:
        texts: list[str] = []
        done: Done | None = None
        try:
            async for event in answer:
                texts.append(view.feed(event))
                done = event if isinstance(event, Done) else done
        finally:
            await answer.cancel()
        if done is None or done.status == "error":
            raise AllStagesFailedError((done.error if done else None) or "every stage failed")
        use = compat.usage(done, view.ends, query, time.perf_counter() - started)
        message = {"role": "assistant", "content": "".join(texts), "refusal": None}
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "usage": _usage(use),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                             "logprobs": None}]}


def _usage(use: compat.Usage) -> dict[str, int]:
    return {"prompt_tokens": use.prompt_tokens, "completion_tokens": use.completion_tokens,
            "total_tokens": use.prompt_tokens + use.completion_tokens}


@router.get("/models")
async def models(rt: Runtime) -> Any:
    """The model names this server answers to."""
    chat = [{"id": c.name, "object": "model", "created": int(c.modified), "owned_by": "mirador",
             "capabilities": ["completion"]}
            for c in compat.cards(rt.orchestrator, rt.settings.models_dir)]
    return {"object": "list", "data": chat + embed_api.openai_models(rt.settings, int(time.time()))}
