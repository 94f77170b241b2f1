"""Ollama's API, so the `ollama` CLI and libraries, Open WebUI and editor plugins just work.

/api/chat and /api/generate stream NDJSON (or return one object with
`"stream": false`), with Ollama's field names and its final statistics in
nanoseconds. An empty chat or prompt loads the model, as Ollama does; with
`keep_alive: 0` it unloads it. See `compat.py` for model names and how stages
appear as text. Request bodies ignore fields they do not know, as Ollama does,
because clients send fields from newer API versions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, field_validator

from mirador.backends import Message
from mirador.catalog.manifest import ModelEntry
from mirador.orchestration.events import Done, ToolCall
from mirador.orchestration.hooks import Query
from mirador.server import client_tools, compat, embed_api, fields, structured, tasks, tool_turn
from mirador.server.client_tools import WireCall
from mirador.server.fields import ROLES, Keep, keep_alive
from mirador.server.native import Runtime
from mirador.server.options import OllamaOptions, Sampling
from mirador.server.runtime import AnswerStream, ServerRuntime
from mirador.server.schemas import Lenient
from mirador.server.streaming import AnswerResponse, failure_message, ndjson, unless_gone

OLLAMA_API_VERSION = "0.11.0"  # the Ollama API whose endpoints and fields this mirrors
FOREVER = "2318-08-18T00:00:00Z"  # Ollama's "never expires"

router = APIRouter(prefix="/api", tags=["ollama"])


class ChatMessage(Lenient):
    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[WireCall] | None = None
    tool_name: str | None = None

    def message(self) -> Message:
        """This turn as the backends take it (a tool's result, a turn that made calls)."""
        return Message(self.role, self.content, tuple(self.images or ()),  # type: ignore[arg-type]
                       tool_calls=tuple(c.request() for c in self.tool_calls or ()),
                       tool_name=self.tool_name)

    @field_validator("images")
    @classmethod
    def _base64(cls, images: list[str] | None) -> Any:
        return fields.base64_images(images)


class GenerationBody(Lenient):
    model: str = Field(min_length=1)
    stream: bool = True
    options: OllamaOptions | None = None
    keep_alive: float | str | None = Field(default=None, description="How long the model "
                                           "stays loaded after this request: seconds or a "
                                           "duration ('5m'); 0 unloads it after the answer; "
                                           "negative keeps it loaded.")
    think: bool | str | None = None
    format: str | dict[str, Any] | None = Field(default=None, description='"json" or a JSON '
                                                "schema: the reply is JSON (structured.py).")

    def sampling(self, cap: int) -> Sampling:
        return (self.options or OllamaOptions()).sampling(cap)

    def keep(self) -> Keep:
        return keep_alive(self.keep_alive)

    def refusals(self, model: str) -> list[tuple[str, str]]:
        """(field, why) for every field set here that Mirador cannot honour."""
        if self.think not in (None, False, ""):
            return [("think", f"model '{model}' does not produce a separate reasoning "
                              "trace; send think: false or leave it out")]
        return []


class ChatBody(GenerationBody):
    messages: list[ChatMessage] = []
    tools: list[Any] | None = Field(default=None, description="The client's tools: the "
                                    "model may call one (client_tools.py).")

    def uses_tools(self) -> bool:
        """Tools offered, or calls and results in the history: one tool turn answers."""
        return bool(self.tools) or any(m.role == "tool" or m.tool_calls for m in self.messages)

    def refusals(self, model: str) -> list[tuple[str, str]]:
        found = super().refusals(model)
        if self.uses_tools() and self.format not in (None, ""):
            found.append(("format", "a reply is either a tool call or JSON in a format, not "
                                    "both; send tools or format"))
        for i, message in enumerate(self.messages):
            if message.role not in ROLES and message.role != "tool":
                found.append((f"messages[{i}].role", fields.bad_role(message.role, ROLES)))
        return found

    def images(self) -> bool:
        return any(m.images for m in self.messages)


class GenerateBody(GenerationBody):
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None
    suffix: str | None = None

    @field_validator("images")
    @classmethod
    def _base64(cls, images: list[str] | None) -> Any:
        return fields.base64_images(images)
    template: str | None = None
    raw: bool | None = None
    context: list[int] | None = None

    def refusals(self, model: str) -> list[tuple[str, str]]:
        found = super().refusals(model)
        if self.suffix:
            found.append(("suffix", f"model '{model}' does not fill in the middle; send "
                                    "the text before and after in the prompt instead"))
        if self.template:
            found.append(("template", "Mirador formats prompts with each model's own chat "
                                      "template; leave template out"))
        if self.raw:
            found.append(("raw", "Mirador always formats the prompt as a chat turn; send "
                                 "raw: false or leave it out"))
        if self.context:
            found.append(("context", "send the earlier turns as messages to /api/chat "
                                     "instead of a context array"))
        return found


class ShowBody(Lenient):
    model: str = ""
    name: str = ""  # older clients


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _chat_piece(text: str) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}}


def _call_piece(call: ToolCall) -> dict[str, Any]:
    """A call of one of the client's tools, as Ollama streams it: arguments as an object."""
    return {"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": call.tool, "arguments": call.arguments}}]}}


def _generate_piece(text: str) -> dict[str, Any]:
    return {"response": text}


@router.post("/chat")
async def chat(body: ChatBody, rt: Runtime, request: Request) -> Any:
    """Ollama's chat: the last user message answered with the earlier ones as history."""
    target = compat.resolve_target(rt.orchestrator, body.model)
    _check(rt, target, body, body.images())
    messages = [(m.role, m.content) for m in body.messages]
    if not any(c.strip() for _, c in messages):
        return await _load_or_unload(rt, target, body, _chat_piece)
    if body.uses_tools():
        return await unless_gone(request, _tool_answer(rt, target, body))
    query, system = compat.chat_query(messages, [m.images or () for m in body.messages])
    return await unless_gone(request, _answer(rt, target, query, system, body, _chat_piece))


@router.post("/generate")
async def generate(body: GenerateBody, rt: Runtime, request: Request) -> Any:
    """Ollama's completion: the prompt answered on its own."""
    target = compat.resolve_target(rt.orchestrator, body.model)
    _check(rt, target, body, bool(body.images))
    if not body.prompt.strip():
        return await _load_or_unload(rt, target, body, _generate_piece)
    query = Query(text=body.prompt.strip(), images=tuple(body.images or ()))
    return await unless_gone(request,
                             _answer(rt, target, query, body.system, body, _generate_piece))


def _check(rt: ServerRuntime, target: compat.Target, body: GenerationBody,
           images: bool) -> None:
    """A 400 naming the first field this request sets that Mirador cannot honour."""
    compat.refuse_embedders(compat.target_models(rt.orchestrator, target))
    refused = body.refusals(target.name)
    if images and not fields.sees(rt.orchestrator, target):
        refused.append(("images", fields.no_images(rt.orchestrator, target)))
    body.keep()  # a keep_alive that is not a duration is a 400 before any work
    fields.refuse(refused)


Piece = Callable[[str], dict[str, Any]]


async def _answer(rt: ServerRuntime, target: compat.Target, query: Query, system: str | None,
                  body: GenerationBody, piece: Piece) -> Any:
    sampling = body.sampling(rt.settings.config.server.max_tokens)
    models = compat.target_models(rt.orchestrator, target)
    await compat.check_fits(rt.orchestrator, models, query, system, sampling.window)
    _keep_for(rt, models, body.keep())
    request = compat.build_request(rt.orchestrator, target, query, system, sampling)
    request = tasks.shaped(rt.orchestrator, target, query, request,
                           structured.from_ollama(body.format), sampling, system)
    answer = await rt.answer(request)
    return await _respond(rt, answer, target, query, body, piece, sampling)


async def _tool_answer(rt: ServerRuntime, target: compat.Target, body: ChatBody) -> Any:
    """A chat with the client's tools: one stage that answers or calls one of them."""
    tools = client_tools.specs(body.tools or [])
    sampling = body.sampling(rt.settings.config.server.max_tokens)
    turn = client_tools.plan(rt.orchestrator, target, [m.message() for m in body.messages],
                             sampling, tools, "auto" if tools else "none")
    query = Query(text=turn.question, history=turn.request.messages)
    await compat.check_fits(rt.orchestrator, [turn.persona.model], query, None, sampling.window)
    _keep_for(rt, [turn.persona.model], body.keep())
    answer = await rt.run(lambda: tool_turn.run(rt.orchestrator, turn))
    return await _respond(rt, answer, target, query, body, _chat_piece, sampling, calls=True)


async def _respond(rt: ServerRuntime, answer: AnswerStream, target: compat.Target,
                   query: Query, body: GenerationBody, piece: Piece, sampling: Sampling,
                   calls: bool = False) -> Any:
    """The answer as NDJSON chunks, or one object; `calls`: report ToolCalls as the
    client's tool_calls (never Mirador's own tools' calls, which already ran)."""
    view = compat.TextView(mode=rt.settings.config.server.compat_stages,
                           stops=tuple(sampling.options.stop or ()))
    chunks = _chunks(rt, answer, view, target, query, piece, body.keep(), calls)
    if body.stream:
        return AnswerResponse(answer, (ndjson(c) async for c in chunks), "application/x-ndjson")
    reply = await _joined(answer, chunks, piece)
    return JSONResponse(reply, status_code=500 if "error" in reply else 200)


def _keep_for(rt: ServerRuntime, models: list[ModelEntry], keep: Keep) -> None:
    """Ollama's keep_alive for the models of this answer: a duration sets how long they
    stay loaded after it; none (or 0, which unloads them after it) restores the configured
    keep-alive for their next load."""
    manager = rt.orchestrator.manager
    for model in models:
        if keep.given and not keep.unload:
            manager.keepalive.set(model, keep.seconds)
        else:
            manager.keepalive.reset(model)


async def _chunks(rt: ServerRuntime, answer: AnswerStream, view: compat.TextView,
                  target: compat.Target, query: Query, piece: Piece,
                  keep: Keep, calls: bool = False) -> AsyncIterator[dict[str, Any]]:
    try:
        async for event in answer:
            if text := view.feed(event):
                yield {"model": target.name, "created_at": _now(), **piece(text), "done": False}
            if calls and isinstance(event, ToolCall):
                yield {"model": target.name, "created_at": _now(), **_call_piece(event),
                       "done": False}
            if isinstance(event, Done):
                yield _final(event, view, target, query, piece)
    except Exception as exc:  # the stream has started: end it with Ollama's error line
        yield {"error": failure_message(exc)}
    if keep.unload:  # keep_alive 0: the models go once the answer is out
        for model in compat.target_models(rt.orchestrator, target):
            await rt.orchestrator.manager.unload(model)


def _final(done: Done, view: compat.TextView, target: compat.Target, query: Query,
           piece: Piece) -> dict[str, Any]:
    if done.status == "error":
        return {"error": done.error or "every stage failed"}
    use = compat.usage(done, view.ends, query)
    ns = 1_000_000_000
    return {"model": target.name, "created_at": _now(), **piece(""), "done": True,
            "done_reason": compat.finish_reason(view.ends), "total_duration": int(use.total * ns),
            "load_duration": int(use.load * ns), "prompt_eval_count": use.prompt_tokens,
            "prompt_eval_duration": int(use.prompt_eval * ns),
            "eval_count": use.completion_tokens, "eval_duration": int(use.eval * ns),
            "ttft_duration": int(use.ttft * ns)}


async def _joined(answer: AnswerStream, chunks: AsyncIterator[dict[str, Any]],
                  piece: Piece) -> dict[str, Any]:
    """The non-streaming reply: every piece's text in the final object."""
    texts: list[str] = []
    calls: list[Any] = []
    final: dict[str, Any] = {}
    try:
        async for chunk in chunks:
            if "error" in chunk or chunk.get("done"):
                final = chunk
            else:
                texts.append(_text_of(chunk))
                calls += chunk.get("message", {}).get("tool_calls", [])
    finally:
        await answer.cancel()
    if "error" in final:
        return final
    whole = piece("".join(texts))
    if calls:
        whole["message"]["tool_calls"] = calls
    return {**final, **whole}


def _text_of(chunk: dict[str, Any]) -> str:
    return str(chunk["message"]["content"] if "message" in chunk else chunk["response"])


async def _load_or_unload(rt: ServerRuntime, target: compat.Target, body: GenerationBody,
                          piece: Piece) -> Any:
    """An empty request loads the target's models (or, with keep_alive 0, unloads them)."""
    manager = rt.orchestrator.manager
    keep = body.keep()
    unload = keep.unload
    _keep_for(rt, _base_models(rt, target), keep)
    for model in _base_models(rt, target):
        await (manager.unload(model) if unload else manager.ensure_loaded(model))
    reply = {"model": target.name, "created_at": _now(), **piece(""), "done": True,
             "done_reason": "unload" if unload else "load"}
    if body.stream:
        return Response(ndjson(reply), media_type="application/x-ndjson")
    return JSONResponse(reply)


def _base_models(rt: ServerRuntime, target: compat.Target) -> list[ModelEntry]:
    card = compat.cards_for(rt.orchestrator, target, rt.settings.models_dir)
    return list(card.base_models)


# -- listing ---------------------------------------------------------------------------


def _details(card: compat.ModelCard) -> dict[str, Any]:
    bases = [m.id for m in card.base_models]
    family = "mirador" if card.kind != "model" else card.base_models[0].backend
    return {"parent_model": "", "format": "gguf", "family": family, "families": bases,
            "parameter_size": "", "quantization_level": ""}


def _modified(card: compat.ModelCard) -> str:
    stamp = datetime.fromtimestamp(card.modified or time.time(), UTC)
    return stamp.isoformat().replace("+00:00", "Z")


@router.get("/tags")
async def tags(rt: Runtime) -> Any:
    """Mirador's chains and the manifest's models, as Ollama lists local models."""
    chat = [{"name": c.name, "model": c.name, "modified_at": _modified(c), "size": c.size,
             "digest": c.digest, "details": _details(c)}
            for c in compat.cards(rt.orchestrator, rt.settings.models_dir)]
    return {"models": chat + embed_api.ollama_tags(rt.settings, _now())}


@router.get("/ps")
async def running(rt: Runtime) -> Any:
    """The models held in memory now."""
    loaded = {m.model_id: m for m in await rt.orchestrator.manager.ps()}
    cards = [c for c in compat.cards(rt.orchestrator, rt.settings.models_dir)
             if c.kind == "model" and c.name in loaded]
    manager = rt.orchestrator.manager
    return {"models": [{"name": c.name, "model": c.name, "size": loaded[c.name].size_bytes,
                        "digest": c.digest, "details": _details(c),
                        "expires_at": _expires(manager.keepalive.expires_in(c.base_models[0])),
                        "size_vram": 0, "context_length": c.base_models[0].context_length}
                       for c in cards]}


def _expires(keep_alive: float | None) -> str:
    if keep_alive is None:
        return FOREVER
    stamp = datetime.fromtimestamp(time.time() + keep_alive, UTC)
    return stamp.isoformat().replace("+00:00", "Z")


@router.post("/show")
async def show(body: ShowBody, rt: Runtime) -> Any:
    """What a model name runs: its stages, personas and base models."""
    if embed_api.is_embed_model(rt.settings, body.model or body.name):
        return embed_api.ollama_show(rt.settings, body.model or body.name, _now())
    target = compat.resolve_target(rt.orchestrator, body.model or body.name)
    card = compat.cards_for(rt.orchestrator, target, rt.settings.models_dir)
    steps = " → ".join(card.steps)
    return {"modelfile": f"# {card.name}: {card.description}\n# steps: {steps}\n",
            "parameters": "", "template": "", "details": _details(card),
            "model_info": {"general.architecture": _details(card)["family"],
                           "mirador.kind": card.kind, "mirador.steps": list(card.steps),
                           "mirador.base_models": [m.id for m in card.base_models]},
            "capabilities": _capabilities(rt, target), "modified_at": _modified(card)}


def _capabilities(rt: ServerRuntime, target: compat.Target) -> list[str]:
    """What the model does here: completion; tools where its final persona can call the
    client's tools; vision where images pass through; `embedding` only for an embedding
    model."""
    return client_tools.capabilities(rt.orchestrator, target)


@router.get("/version")
async def api_version() -> Any:
    """The Ollama API version mirrored here, and Mirador's own."""
    return {"version": OLLAMA_API_VERSION, "mirador": version("mirador")}
