"""The app factory: one warm orchestrator behind the native, Ollama and OpenAI routes.

    app = create_app(load_settings())      # then: uvicorn.run(app, host=..., port=...)

The orchestrator is built when the server starts and closed when it stops, so
models loaded by one request are warm for the next. Every error, from a route,
the validator or the guard, leaves as JSON in its route's dialect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mirador.agents.clock import Clock
from mirador.agents.spec import declared_agents
from mirador.compose import create_orchestrator
from mirador.energy.power import PowerSource, PowerWatcher
from mirador.errors import MiradorError, report_unexpected
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.profiles import ProfileLimits
from mirador.server import agents_api, embed_api, native, ollama_api, openai_api, schemas
from mirador.server.errors import HttpError, error_body, message_of, status_of
from mirador.server.limits import Guard, GuardPolicy, StreamGate, api_token
from mirador.server.runtime import ServerRuntime
from mirador.server.training_schedule import TrainingSchedule
from mirador.settings import Settings
from mirador.toolspec import Tool

log = logging.getLogger("mirador.server")

OrchestratorFactory = Callable[[Settings], Orchestrator]


def static_dir() -> Path:
    return Path(str(resources.files("mirador.server").joinpath("static")))


def create_app(settings: Settings, orchestrator_factory: OrchestratorFactory = create_orchestrator,
               warm: bool = True, clock: Clock | None = None,
               agent_tools: Mapping[str, Tool] | None = None) -> FastAPI:
    """The server's ASGI app. `warm` starts loading the configured stages' models at start-up;
    `clock` is the agents' (the system's by default); `agent_tools` are the tools agents'
    conditions may call."""
    cfg = settings.config.server
    agents = declared_agents(settings)  # a bad declaration stops `mirador serve` here, said

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orchestrator = orchestrator_factory(settings)
        rt = ServerRuntime(settings, orchestrator, StreamGate(cfg.max_active, cfg.max_queued))
        app.state.runtime = rt
        if warm:
            _warm(orchestrator)
        await _ready_chooser(orchestrator)
        watching = power = None
        training = TrainingSchedule(settings, clock, _power_source(orchestrator))
        try:
            tools = agent_tools if agent_tools is not None else orchestrator.tools
            watching = agents_api.start_agents(rt, agents, clock, tools)
            power = _watch_power(orchestrator)
            training.start()  # `mirador train` when due (training: in config.yaml)
            yield
        finally:
            await training.aclose()
            await _stop(watching)
            if power is not None:
                await power.aclose()
            await rt.aclose()

    # No /docs or /redoc: FastAPI's pages load Swagger UI and ReDoc from a CDN, and
    # nothing here may reach the network. The description is served at /openapi.json.
    app = FastAPI(title="Mirador", version=version("mirador"), lifespan=lifespan,
                  description=_DESCRIPTION, docs_url=None, redoc_url=None)
    for router in (native.router, agents_api.router, ollama_api.router, openai_api.router,
                   embed_api.ollama_router, embed_api.openai_router):
        app.include_router(router)
    _add_pages(app)
    _add_error_handlers(app)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Guard, policy=GuardPolicy.from_config(cfg, api_token(settings)))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


_DESCRIPTION = """Mirador's local server. Three dialects over one warm orchestrator:
Mirador's own API under `/mirador` (SSE events as `mirador ask --json` prints them),
Ollama's under `/api`, OpenAI's under `/v1`. A chat page is at `/`."""


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.wait({task})


def _warm(orchestrator: Orchestrator) -> None:
    seen: set[str] = set()
    for stage in orchestrator.stages:
        entry = orchestrator.resolve(stage).model
        if entry.id not in seen:
            seen.add(entry.id)
            orchestrator.manager.warm(entry)


def _power_source(orchestrator: Orchestrator) -> PowerSource | None:
    """The energy profiles' power source, so scheduled training reads the same state."""
    return orchestrator.limits.power if isinstance(orchestrator.limits, ProfileLimits) else None


def _watch_power(orchestrator: Orchestrator) -> PowerWatcher | None:
    """Log each change of energy profile while serving (answers read the power anyway)."""
    if not isinstance(orchestrator.limits, ProfileLimits):
        return None
    watcher = orchestrator.limits.watch()
    watcher.start()
    return watcher


async def _ready_chooser(orchestrator: Orchestrator, seconds: float = 120.0) -> None:
    """Wait, off the event loop, for the chooser's query classifier to load.

    Choosing a chain happens inside `plan()`, on the event loop; a learner whose
    classifier is still loading would make it wait there, stalling every stream.
    """
    ready = getattr(orchestrator.chooser, "classifier", None)
    if ready is None:
        return
    try:
        await asyncio.to_thread(ready, seconds)
    except MiradorError as exc:  # learning that cannot start must not stop the server
        log.warning("the chain chooser is not ready (%s); answers use the default routing", exc)
    except Exception as exc:  # nor may a bug in it; its traceback shows under MIRADOR_DEBUG=1
        report_unexpected(log, "the chain chooser could not load its query classifier, so "
                          "answers use the default routing", exc)


def _add_pages(app: FastAPI) -> None:
    folder = static_dir()
    app.mount("/static", StaticFiles(directory=folder), name="static")

    # HEAD too: the `ollama` CLI checks that a server is up with `HEAD /`.
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(folder / "index.html")


# -- errors ---------------------------------------------------------------------------


def _error(request: Request, status: int, kind: str, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, message, kind), status_code=status,
                        headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MiradorError)
    async def mirador_error(request: Request, exc: MiradorError) -> JSONResponse:
        status, kind, headers = status_of(exc)
        return _error(request, status, kind, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(request, 400, "invalid_request", describe_invalid(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, HttpError):  # e.g. the body limit, hit while parsing
            return await mirador_error(request, exc.__cause__)
        return _error(request, exc.status_code, _HTTP_KINDS.get(exc.status_code, "error"),
                      _http_message(request, exc), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        status, kind, headers = status_of(exc)
        return _error(request, status, kind, message_of(exc), headers)


_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 400: "invalid_request"}


def _http_message(request: Request, exc: StarletteHTTPException) -> str:
    if exc.status_code == 404:
        return (f"no such endpoint: {request.method} {request.url.path}; "
                "the API is described at /openapi.json")
    if exc.status_code == 405:
        return f"{request.method} is not allowed on {request.url.path}; see /openapi.json"
    if exc.status_code == 400:
        return f"the request body could not be read ({exc.detail}); send valid JSON"
    return str(exc.detail)


def describe_invalid(errors: Any) -> str:
    """One clause per problem: where in the request, what is wrong."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            parts.append("the body is not valid JSON; send a JSON object")
            continue
        what = "unknown field; remove it" if err.get("type") == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {what}")
    return "invalid request: " + "; ".join(parts)


# -- OpenAPI --------------------------------------------------------------------------


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with SSE event schemas and the 400 errors this server returns."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    events, shared = schemas.event_schemas(native.EVENTS_REF)
    components.update(shared)
    components.update(events)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            _fix_errors(path, operation)
    app.openapi_schema = doc
    return doc


def _fix_errors(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if responses.pop("422", None) is not None:
        responses["400"] = {"description": "Bad request: the message names the field",
                            "content": {"application/json": {"schema": _error_schema(path)}}}


def _error_schema(path: str) -> dict[str, Any]:
    sample = error_body(path, "", "")
    if isinstance(sample["error"], str):
        return {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string"}}}
    return {"$ref": "#/components/schemas/ErrorResponse"}
