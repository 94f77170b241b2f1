"""Mirador's own API, under /mirador: ask (SSE), rate, memory, models, health.

`POST /mirador/ask` streams Server-Sent Events: each has `event: <type>` and
`data: <the event as JSON>`, exactly the objects `mirador ask --json` prints
(ack, stage_start, token, error, stage_end, done).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from mirador.backends import Message
from mirador.orchestration.events import final
from mirador.orchestration.hooks import Query as MiradorQuery
from mirador.server import schemas
from mirador.server.client import home_id
from mirador.server.compat import cards, check_fits, model_size, refuse_embedders
from mirador.server.errors import NotFoundError
from mirador.server.runtime import AnswerRequest, AnswerStream, ServerRuntime
from mirador.server.services import memory_service, rating_service
from mirador.server.streaming import AnswerResponse, failure_message, sse, unless_gone

EVENTS_REF = "#/components/schemas/{model}"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in ((400, "Bad request"), (401, "Missing or wrong API token"),
                       (404, "Not found"), (501, "Not available in this build"),
                       (503, "Busy: retry after the Retry-After header's seconds"))}

router = APIRouter(prefix="/mirador", tags=["native"], responses=ERRORS)


def runtime(request: Request) -> ServerRuntime:
    rt: ServerRuntime = request.app.state.runtime
    return rt


Runtime = Annotated[ServerRuntime, Depends(runtime)]


def _sse_doc() -> dict[int | str, dict[str, Any]]:
    refs = [{"$ref": EVENTS_REF.format(model=schemas.event_schema_name(cls))}
            for cls in schemas.EVENT_CLASSES]
    return {200: {"description": "Server-Sent Events: `event: <type>` then `data: <JSON>`, one "
                                 "per event, as `mirador ask --json` prints them. With "
                                 "`stream: false`, the `done` event as JSON.",
                  "content": {"text/event-stream": {"schema": {"oneOf": refs}},
                              "application/json": {"schema": refs[-1]}}}}


@router.post("/ask", responses=_sse_doc())
async def ask(body: schemas.AskBody, rt: Runtime, request: Request) -> Any:
    """Answer a question progressively, streaming typed events."""
    return await unless_gone(request, _ask(body, rt))


async def _ask(body: schemas.AskBody, rt: ServerRuntime) -> Any:
    history = tuple(Message(t.role, t.content) for t in body.history)
    query = MiradorQuery(text=body.query.strip(), session_id=body.session_id,
                         namespace=body.namespace, history=history)
    models = _models_for(rt, body)
    refuse_embedders(models)
    await check_fits(rt.orchestrator, models, query)
    answer = await rt.answer(AnswerRequest(query=query, stages=body.stages, model=body.model,
                                           chain=body.chain))
    if not body.stream:
        return JSONResponse(await _drain(answer))
    return AnswerResponse(answer, _events(answer), "text/event-stream")


def _models_for(rt: ServerRuntime, body: schemas.AskBody) -> list[Any]:
    """The base models an ask may run on (before it is planned): a chain's, or the stages'."""
    orchestrator = rt.orchestrator
    if body.chain:
        return [orchestrator.manifest.resolve(s.persona).model
                for s in orchestrator.chain_stages(body.chain)]
    return [orchestrator.resolve(s, body.model).model for s in orchestrator.stages]


async def _events(answer: AnswerStream) -> AsyncIterator[bytes]:
    try:
        async for event in answer:
            yield sse(event.type, event.to_dict())
    except Exception as exc:  # the stream has started: end it with an error event
        yield sse("error", {"type": "error", "stage": None, "model": None, "status": "error",
                            "message": failure_message(exc)})


async def _drain(answer: AnswerStream) -> dict[str, Any]:
    try:
        return (await final(answer)).to_dict()
    finally:
        await answer.cancel()


@router.post("/rate", response_model=schemas.RateResult)
async def rate(body: schemas.RateBody, rt: Runtime) -> Any:
    """Rate an answer from 1 to 5 (the latest one when no answer_id is given)."""
    return await rating_service(rt).rate(body.answer_id, body.rating, body.note)


@router.get("/memory", response_model=schemas.MemoryList)
async def list_memories(rt: Runtime, namespace: str | None = None,
                        limit: int = Query(50, ge=1, le=1000)) -> Any:
    """What Mirador remembers, newest first."""
    return {"memories": await memory_service(rt).recent(namespace, limit)}


@router.get("/memory/search", response_model=schemas.MemoryList)
async def search_memories(rt: Runtime, q: str = Query(min_length=1),
                          namespace: str | None = None,
                          limit: int = Query(10, ge=1, le=100)) -> Any:
    """Memories ranked by how well they match `q`, with their scores."""
    return {"memories": await memory_service(rt).search(q, namespace, limit)}


@router.delete("/memory", response_model=schemas.ForgetAllResult)
async def forget_all_memories(rt: Runtime) -> Any:
    """Forget everything remembered (memories, journals, the text learning kept)."""
    return {"forgotten": await memory_service(rt).forget_all()}


@router.delete("/memory/{memory_id}", response_model=schemas.ForgetResult)
async def forget_memory(memory_id: str, rt: Runtime) -> Any:
    """Forget one memory for good."""
    if not await memory_service(rt).forget(memory_id):
        raise NotFoundError(f"no memory '{memory_id}'; list them with GET /mirador/memory")
    return {"id": memory_id, "forgotten": True}


@router.get("/models", response_model=schemas.ModelsList)
async def list_models(rt: Runtime) -> Any:
    """The manifest's models (and which are loaded), personas, chains and compat names."""
    manifest = rt.orchestrator.manifest
    loaded = {m.model_id for m in await rt.orchestrator.manager.ps()}
    models_dir = rt.settings.models_dir
    return {
        "models": [{"id": m.id, "backend": m.backend, "source": m.source, "loaded": m.id in loaded,
                    "size": model_size(m, models_dir)} for m in manifest.models],
        "personas": [{"id": p.id, "model": p.model, "description": p.description}
                     for p in manifest.personas],
        "chains": [{"id": c.id, "description": c.description, "steps": c.steps}
                   for c in manifest.chains],
        "names": [c.name for c in cards(rt.orchestrator, models_dir)],
    }


@router.get("/ps", response_model=schemas.PsList)
async def ps(rt: Runtime) -> Any:
    """The models held in memory now."""
    return {"models": [{"id": m.model_id, "backend": m.backend, "size": m.size_bytes,
                        "detail": m.detail} for m in await rt.orchestrator.manager.ps()]}


@router.post("/models/{model_id}/load", response_model=schemas.LoadResult)
async def load_model(model_id: str, rt: Runtime) -> Any:
    """Load a manifest model now, so the next answer on it starts at once."""
    entry = rt.orchestrator.manifest.model(model_id)
    started = time.perf_counter()
    await rt.orchestrator.manager.ensure_loaded(entry)
    return {"id": entry.id, "loaded": True, "seconds": round(time.perf_counter() - started, 4)}


@router.post("/models/{model_id}/unload", response_model=schemas.LoadResult)
async def unload_model(model_id: str, rt: Runtime) -> Any:
    """Free a model's memory (after any answer using it has finished)."""
    entry = rt.orchestrator.manifest.model(model_id)
    started = time.perf_counter()
    await rt.orchestrator.manager.unload(entry)
    return {"id": entry.id, "loaded": False, "seconds": round(time.perf_counter() - started, 4)}


@router.get("/health", response_model=schemas.Health)
async def health(rt: Runtime) -> Any:
    """Is the server up, how busy is it, which models are warm."""
    return {"status": "ok", "version": version("mirador"), "home_id": home_id(rt.settings.home),
            "uptime": round(time.time() - rt.started, 3), "active": rt.gate.active,
            "queued": rt.gate.waiting, "served": rt.served, "max_active": rt.gate.max_active,
            "max_queued": rt.gate.max_queued,
            "loaded": [m.model_id for m in await rt.orchestrator.manager.ps()]}
