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

from mirador.backends import Message
from mirador.catalog.manifest import SamplingOptions
from mirador.errors import AllStagesFailedError
from mirador.orchestration.events import Done, ToolCall
from mirador.orchestration.hooks import Query
from mirador.server import client_tools, compat, embed_api, fields, tasks, tool_turn
from mirador.server.client_tools import WireCall
from mirador.server.native import Runtime
from mirador.server.options import Sampling, capped
from mirador.server.runtime import AnswerStream, ServerRuntime
from mirador.server.schemas import Lenient
from mirador.server.streaming import AnswerResponse, failure_message, sse_data, unless_gone
from mirador.server.structured import ResponseFormatBody

router = APIRouter(prefix="/v1", tags=["openai"])


class ImageUrl(Lenient):
    url: str
    detail: str | None = None


class ContentPart(Lenient):
    type: str
    text: str = ""
    image_url: ImageUrl | None = None

    def image(self) -> str | None:
        """The base64 of an inline (data: URL) image; None for anything else."""
        if self.image_url is None:
            return None
        head, _, data = self.image_url.url.partition(",")
        return data if head.startswith("data:image/") and head.endswith(";base64") else None


class ChatMessage(Lenient):
    role: str
    content: str | list[ContentPart] | None = None
    tool_calls: list[WireCall] | None = None
    tool_call_id: str | None = None

    def message(self, names: dict[str, str]) -> Message:
        """This turn as the backends take it; `names`: tool names by call id, for a tool's
        result (OpenAI names only the call)."""
        role = "system" if self.role == "developer" else self.role
        name = names.get(self.tool_call_id or "") if role == "tool" else None
        return Message(role, self.text(), self.images(),  # type: ignore[arg-type]
                       tool_calls=tuple(c.request() for c in self.tool_calls or ()),
                       tool_name=name, tool_call_id=self.tool_call_id)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""

    def parts(self) -> list[str]:
        return [p.type for p in self.content] if isinstance(self.content, list) else []

    def images(self) -> tuple[str, ...]:
        if not isinstance(self.content, list):
            return ()
        return tuple(image for p in self.content if (image := p.image()) is not None)


class StreamOptions(Lenient):
    include_usage: bool = False


class CompletionBody(Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    tools: list[Any] | None = Field(default=None, description="The client's tools: the "
                                    "model may call one (client_tools.py).")
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None  # at most one call a turn: either value holds
    functions: list[Any] | None = None
    function_call: Any = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: str | None = None
    web_search_options: Any = None
    response_format: ResponseFormatBody | None = None

    def sampling(self, cap: int) -> Sampling:
        """The sampling fields for every stage, and the token limit capped at `cap`."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        options = SamplingOptions(temperature=self.temperature, top_p=self.top_p,
                                  seed=self.seed, stop=stop or None)
        return Sampling(options=options,
                        max_tokens=capped(self.max_completion_tokens or self.max_tokens, cap))

    def refusals(self, model: str) -> list[tuple[str, str]]:
        """(field, why) for every field set here that Mirador cannot honour."""
        found = [(name, why) for name, why in (
            ("n", "Mirador gives one answer per request; send n: 1 or leave it out, and "
                  "ask again for another"),
            ("logprobs", f"model '{model}' does not report log probabilities here; send "
                         "logprobs: false or leave it out"),
            ("top_logprobs", "log probabilities are not reported; leave top_logprobs out"),
            ("presence_penalty", _NOT_APPLIED), ("frequency_penalty", _NOT_APPLIED),
            ("logit_bias", _NOT_APPLIED),
            ("functions", _LEGACY), ("function_call", _LEGACY),
            ("modalities", "Mirador answers in text only; send ['text'] or leave it out"),
            ("audio", "Mirador answers in text only; leave audio out"),
            ("prediction", "predicted outputs are not supported; leave prediction out"),
            ("reasoning_effort", f"model '{model}' does not reason separately; leave "
                                 "reasoning_effort out"),
            ("web_search_options", "nothing here searches the web; leave it out"),
        ) if self._set(name)]
        return found + self._message_refusals(model)

    def _set(self, name: str) -> bool:
        value = getattr(self, name)
        defaults: dict[str, Any] = {"n": 1, "logprobs": False, "presence_penalty": 0.0,
                                    "frequency_penalty": 0.0, "modalities": ["text"]}
        return value is not None and value != defaults.get(name) and value not in ([], {})

    def _message_refusals(self, model: str) -> list[tuple[str, str]]:
        found = []
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            found.append(("tool_choice", f"{self.tool_choice!r} asks for a call, but no tools "
                                         "were sent; send tools or leave tool_choice out"))
        if self.uses_tools() and self.response_format is not None \
                and self.response_format.type != "text":
            found.append(("response_format", "a reply is either a tool call or JSON in a "
                                             "format, not both; send tools or response_format"))
        for i, message in enumerate(self.messages):
            if message.role == "function":
                found.append((f"messages[{i}].role", _LEGACY))
            elif message.role not in (*fields.OPENAI_ROLES, "tool"):
                found.append((f"messages[{i}].role",
                              fields.bad_role(message.role, fields.OPENAI_ROLES)))
            found += _part_refusals(i, message)
        return list(dict.fromkeys(found))

    def images(self) -> bool:
        return any("image_url" in m.parts() for m in self.messages)

    def uses_tools(self) -> bool:
        """Tools offered, or calls and results in the history: one tool turn answers."""
        return bool(self.tools) or any(m.role == "tool" or m.tool_calls for m in self.messages)

    def backend_messages(self) -> list[Message]:
        names = {c.id: c.function.name for m in self.messages for c in m.tool_calls or ()
                 if c.id}
        return [m.message(names) for m in self.messages]


def _part_refusals(i: int, message: ChatMessage) -> list[tuple[str, str]]:
    found = []
    for j, part in enumerate(message.content if isinstance(message.content, list) else []):
        where = f"messages[{i}].content[{j}]"
        if part.type not in ("text", "image_url"):
            found.append((f"{where}.type", f"'{part.type}' parts are not supported; send text"))
        elif part.type == "image_url" and part.image() is None:
            found.append((f"{where}.image_url", "Mirador fetches nothing from the network; "
                          "send the image inline as a data:image/...;base64 URL"))
        elif part.type == "image_url":
            try:
                fields.base64_images([part.image() or ""])
            except ValueError as exc:
                found.append((f"{where}.image_url", str(exc)))
    return found


_LEGACY = "the legacy function-calling fields are not supported; send tools (and tool_choice)"
_NOT_APPLIED = "Mirador does not apply it; leave it out (it applies temperature, top_p, " \
    "seed, stop and max_tokens)"


@router.post("/chat/completions")
async def chat_completions(body: CompletionBody, rt: Runtime, request: Request) -> Any:
    """A chat completion: every stage streams in turn (or only the final one; see config)."""
    return await unless_gone(request, _complete(body, rt))


async def _complete(body: CompletionBody, rt: ServerRuntime) -> Any:
    target = compat.resolve_target(rt.orchestrator, body.model)
    compat.refuse_embedders(compat.target_models(rt.orchestrator, target))
    refused = body.refusals(target.name)
    if body.images() and not fields.sees(rt.orchestrator, target):
        refused.append(("messages", fields.no_images(rt.orchestrator, target)))
    fields.refuse(refused)
    if body.uses_tools():
        return await _tool_completion(body, rt, target)
    query, system = compat.chat_query([(m.role, m.text()) for m in body.messages],
                                      [m.images() for m in body.messages])
    await compat.check_fits(rt.orchestrator, compat.target_models(rt.orchestrator, target),
                            query, system)
    sampling = body.sampling(rt.settings.config.server.max_tokens)
    request = compat.build_request(rt.orchestrator, target, query, system, sampling)
    fmt = body.response_format.resolved() if body.response_format else None
    request = tasks.shaped(rt.orchestrator, target, query, request, fmt, sampling, system)
    answer = await rt.answer(request)
    return await _respond(body, rt, answer, target, query, sampling)


async def _tool_completion(body: CompletionBody, rt: ServerRuntime,
                           target: compat.Target) -> Any:
    """A completion with the client's tools: one stage that answers or calls one of them."""
    tools = client_tools.specs(body.tools or [])
    mode = client_tools.choice(body.tool_choice, tools)
    sampling = body.sampling(rt.settings.config.server.max_tokens)
    turn = client_tools.plan(rt.orchestrator, target, body.backend_messages(), sampling, tools,
                             mode if tools else "none")
    query = Query(text=turn.question, history=turn.request.messages)
    await compat.check_fits(rt.orchestrator, [turn.persona.model], query)
    answer = await rt.run(lambda: tool_turn.run(rt.orchestrator, turn))
    return await _respond(body, rt, answer, target, query, sampling, calls=True)


async def _respond(body: CompletionBody, rt: ServerRuntime, answer: AnswerStream,
                   target: compat.Target, query: Query, sampling: Sampling,
                   calls: bool = False) -> Any:
    """The answer as chunks or one completion; `calls`: ToolCalls are the client's."""
    view = compat.TextView(mode=rt.settings.config.server.compat_stages,
                           stops=tuple(sampling.options.stop or ()))
    reply = _Reply(id=f"chatcmpl-{answer.ack.answer_id if answer.ack else 'x'}",
                   model=target.name, created=int(time.time()), calls=calls)
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return AnswerResponse(answer, reply.stream(answer, view, query, usage),
                              "text/event-stream")
    return await reply.whole(answer, view, query)


class _Reply:
    def __init__(self, id: str, model: str, created: int, calls: bool = False) -> None:
        self.id, self.model, self.created = id, model, created
        self.calls: list[dict[str, Any]] | None = [] if calls else None  # the client's

    def _call(self, event: Any) -> dict[str, Any] | None:
        """A ToolCall as OpenAI's tool_calls entry, when calls are the client's."""
        if self.calls is None or not isinstance(event, ToolCall):
            return None
        call = {"index": len(self.calls), "id": f"call_{self.id.removeprefix('chatcmpl-')}_"
                f"{len(self.calls)}", "type": "function",
                "function": {"name": event.tool,
                             "arguments": client_tools.arguments_json(event.arguments)}}
        self.calls.append(call)
        return call

    def _finish(self, view: compat.TextView) -> str:
        return "tool_calls" if self.calls else compat.finish_reason(view.ends)

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices, **extra}

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}])

    async def stream(self, answer: AnswerStream, view: compat.TextView, query: Any,
                     include_usage: bool) -> AsyncIterator[bytes]:
        yield sse_data(self._delta({"role": "assistant", "content": ""}))
        try:
            async for event in answer:
                if text := view.feed(event):
                    yield sse_data(self._delta({"content": text}))
                if call := self._call(event):
                    yield sse_data(self._delta({"tool_calls": [call]}))
                if isinstance(event, Done):
                    if event.status == "error":
                        raise AllStagesFailedError(event.error or "every stage failed")
                    yield sse_data(self._delta({}, self._finish(view)))
                    if include_usage:
                        use = compat.usage(event, view.ends, query)
                        yield sse_data(self._chunk([], usage=_usage(use)))
        except Exception as exc:  # the stream has started: end it with an error object
            yield sse_data({"error": {"message": failure_message(exc), "type": "server_error",
                                      "param": None, "code": None}})
            return
        yield sse_data("[DONE]")

    async def whole(self, answer: AnswerStream, view: compat.TextView,
                    query: Any) -> dict[str, Any]:
        texts: list[str] = []
        done: Done | None = None
        try:
            async for event in answer:
                texts.append(view.feed(event))
                self._call(event)
                done = event if isinstance(event, Done) else done
        finally:
            await answer.cancel()
        if done is None or done.status == "error":
            raise AllStagesFailedError((done.error if done else None) or "every stage failed")
        use = compat.usage(done, view.ends, query)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts),
                                   "refusal": None}
        if self.calls:
            message["content"] = message["content"] or None
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"}
                                     for c in self.calls]
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "usage": _usage(use),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": self._finish(view)}]}


def _usage(use: compat.Usage) -> dict[str, int]:
    return {"prompt_tokens": use.prompt_tokens, "completion_tokens": use.completion_tokens,
            "total_tokens": use.prompt_tokens + use.completion_tokens}


@router.get("/models")
async def models(rt: Runtime) -> Any:
    """The model names this server answers to."""
    orchestrator = rt.orchestrator
    chat = [{"id": c.name, "object": "model", "created": int(c.modified), "owned_by": "mirador",
             "capabilities": client_tools.capabilities(
                 orchestrator, compat.resolve_target(orchestrator, c.name))}
            for c in compat.cards(orchestrator, rt.settings.models_dir)]
    return {"object": "list", "data": chat + embed_api.openai_models(rt.settings, int(time.time()))}
