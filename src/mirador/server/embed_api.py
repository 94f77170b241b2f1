"""Embeddings in Ollama's and OpenAI's shapes, from Mirador's own local embedder.

    POST /api/embed        Ollama: {"model", "input": text or [texts], "truncate"}
    POST /api/embeddings   Ollama's older call: {"model", "prompt"} -> {"embedding"}
    POST /v1/embeddings    OpenAI: {"model", "input", "encoding_format", "dimensions"}

The models are the embedder memory uses (`memory.embedder`; all-MiniLM-L6-v2 run in
numpy by default), named `mirador:embed`, and also `all-minilm` (Ollama's name for
it) when that is what runs; and every manifest model with `embedding: true`, by its id:
a GGUF run by llama.cpp with `embedding=True` (the model's pooling, else the mean of
its token vectors), an Ollama model through Ollama's embed, an OpenAI-compatible one
through its /v1/embeddings. Vectors have unit length. Each loads at its first request.
A chat model here is a 400 naming the models that embed, and a chat request to an
embedding model is a 400 too (compat.build_request).

    field                      policy
    truncate (Ollama)          true: texts are cut to the model's 256 tokens, as Ollama
                               does; false: a longer text is a 400 naming its index
    dimensions                 only the model's own (384 for MiniLM), else a 400
    encoding_format (OpenAI)   "float" or "base64" (little-endian float32), else a 400
    input as token ids         a 400: send text
    options, keep_alive, user  accepted; they change nothing for an in-process embedder
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter
from pydantic import Field

from mirador.backends import embedder_of
from mirador.catalog.manifest import ModelEntry
from mirador.embeddings import CountsTokens, Embedder, load_embedder
from mirador.errors import ModelNotFoundError
from mirador.orchestration.orchestrator import Orchestrator
from mirador.server.compat import resolve_target
from mirador.server.errors import BadRequestError
from mirador.server.native import Runtime
from mirador.server.runtime import ServerRuntime
from mirador.server.schemas import Lenient
from mirador.settings import Settings

EMBED_MODEL = "mirador:embed"
MINILM_NAME = "all-minilm"  # Ollama's library name for all-MiniLM-L6-v2
MAX_INPUTS = 2048  # OpenAI's limit on texts per request

ollama_router = APIRouter(prefix="/api", tags=["ollama"])
openai_router = APIRouter(prefix="/v1", tags=["openai"])


def embed_model_names(settings: Settings) -> list[str]:
    """The names Mirador's own embedder answers to."""
    memory = settings.config.memory
    minilm = memory.embedder == "minilm" and not memory.embedder_model
    return [EMBED_MODEL, MINILM_NAME] if minilm else [EMBED_MODEL]


def embed_description(settings: Settings) -> str:
    memory = settings.config.memory
    model = memory.embedder_model or "all-MiniLM-L6-v2"
    return f"Mirador's embedder ({memory.embedder}: {model}); vectors of unit length."


def is_embed_model(settings: Settings, name: str) -> bool:
    """Whether `name` is Mirador's own embedder (manifest embedders are manifest models)."""
    return name.strip().removesuffix(":latest") in embed_model_names(settings)


def manifest_embedders(orchestrator: Orchestrator) -> list[ModelEntry]:
    """The manifest's embedding models (`embedding: true`)."""
    return [m for m in orchestrator.manifest.models if m.embedding]


def _check_model(rt: ServerRuntime, name: str) -> str | ModelEntry:
    """What embeds for `name`: Mirador's embedder (by its name) or a manifest model; a 400
    for a chat model, a 404 for an unknown one."""
    if is_embed_model(rt.settings, name):
        return name.strip().removesuffix(":latest")
    wanted = name.strip().removesuffix(":latest")
    for entry in manifest_embedders(rt.orchestrator):
        if entry.id == wanted:
            return entry
    names = ", ".join([*embed_model_names(rt.settings),
                       *(m.id for m in manifest_embedders(rt.orchestrator))])
    try:
        resolve_target(rt.orchestrator, name)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"model '{name}' not found; the embedding models here are: "
                                 f"{names}") from None
    raise BadRequestError(f"model '{name}' does not make embeddings; use one of: {names}")


# -- computing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Vectors:
    rows: np.ndarray
    tokens: int
    seconds: float
    load: float


async def _embedder(rt: ServerRuntime) -> tuple[Embedder, float]:
    """The server's embedder (made at the first request), and how long loading took now."""
    started = time.perf_counter()
    if rt.embedder is None:
        rt.embedder = load_embedder(rt.settings)
    inner = await asyncio.to_thread(rt.embedder.wait)
    return inner, time.perf_counter() - started


async def embed(rt: ServerRuntime, texts: Sequence[str], truncate: bool = True,
                model: str | ModelEntry = EMBED_MODEL) -> Vectors:
    """Unit vectors for `texts` from `model`, with the tokens they took."""
    if not texts:
        raise BadRequestError("input is empty; send a text or a list of texts")
    if len(texts) > MAX_INPUTS:
        raise BadRequestError(f"input has {len(texts)} texts; send at most {MAX_INPUTS} "
                              "per request")
    if isinstance(model, ModelEntry):
        return await _manifest_embed(rt, model, list(texts), truncate)
    embedder, load = await _embedder(rt)
    started = time.perf_counter()
    tokens = await asyncio.to_thread(_tokens, embedder, texts, truncate)
    rows = await asyncio.to_thread(embedder.embed, list(texts))
    return Vectors(rows=rows, tokens=tokens, seconds=time.perf_counter() - started + load,
                   load=load)


async def _manifest_embed(rt: ServerRuntime, model: ModelEntry, texts: list[str],
                          truncate: bool) -> Vectors:
    """Vectors from a manifest model, loaded (within the memory budget) by the manager."""
    manager = rt.orchestrator.manager
    backend = embedder_of(manager.backend(model.backend))
    if backend is None:
        raise BadRequestError(f"model '{model.id}' runs on backend '{model.backend}', which "
                              "cannot make embeddings; use llamacpp, ollama or openai")
    started = time.perf_counter()
    await manager.prepare(model)
    load = time.perf_counter() - started
    got = await backend.embed(model, texts, truncate)
    raw = np.asarray(got.vectors, dtype=np.float64)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    rows = (raw / np.where(norms == 0, 1, norms)).astype(np.float32)
    return Vectors(rows=rows, tokens=got.tokens, seconds=time.perf_counter() - started,
                   load=load)


def _tokens(embedder: Embedder, texts: Sequence[str], truncate: bool) -> int:
    """Tokens embedded (after cutting); a 400 for a long text when cutting is refused."""
    if not isinstance(embedder, CountsTokens):
        if not truncate:
            raise BadRequestError("this embedder cannot count tokens, so truncate: false "
                                  "cannot be checked; leave truncate out")
        return 0
    counts = embedder.count_tokens(texts)
    limit = embedder.max_tokens
    for index, count in enumerate(counts):
        if count > limit and not truncate:
            raise BadRequestError(f"input {index} is {count} tokens, more than the embedding "
                                  f"model's {limit}; shorten it or send truncate: true")
    return sum(min(c, limit) for c in counts)


def _dimensions(requested: int | None, rows: np.ndarray) -> None:
    if requested is not None and requested != rows.shape[1]:
        raise BadRequestError(f"dimensions: this model makes vectors of {rows.shape[1]} "
                              "dimensions only; leave dimensions out or send that number")


# -- Ollama ------------------------------------------------------------------------------


class EmbedBody(Lenient):
    model: str = Field(min_length=1)
    input: str | list[str] = Field(description="A text or a list of texts.")
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingsBody(Lenient):
    model: str = Field(min_length=1)
    prompt: str
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


@ollama_router.post("/embed")
async def ollama_embed(body: EmbedBody, rt: Runtime) -> Any:
    """Ollama's embeddings: one unit vector per input text."""
    model = _check_model(rt, body.model)
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors = await embed(rt, texts, body.truncate, model)
    _dimensions(body.dimensions, vectors.rows)
    ns = 1_000_000_000
    return {"model": _name(model), "embeddings": vectors.rows.tolist(),
            "total_duration": int(vectors.seconds * ns), "load_duration": int(vectors.load * ns),
            "prompt_eval_count": vectors.tokens}


@ollama_router.post("/embeddings")
async def ollama_embeddings(body: EmbeddingsBody, rt: Runtime) -> Any:
    """Ollama's older embeddings call: one prompt, one vector."""
    vectors = await embed(rt, [body.prompt], model=_check_model(rt, body.model))
    return {"embedding": vectors.rows[0].tolist()}


# -- OpenAI ------------------------------------------------------------------------------


class OpenAIEmbedBody(Lenient):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


@openai_router.post("/embeddings")
async def openai_embeddings(body: OpenAIEmbedBody, rt: Runtime) -> Any:
    """OpenAI's embeddings: a list of `embedding` objects and the tokens used."""
    model = _check_model(rt, body.model)
    vectors = await embed(rt, _texts(body.input), model=model)
    _dimensions(body.dimensions, vectors.rows)
    data = [{"object": "embedding", "index": i, "embedding": _encoded(row, body.encoding_format)}
            for i, row in enumerate(vectors.rows)]
    return {"object": "list", "model": _name(model), "data": data,
            "usage": {"prompt_tokens": vectors.tokens, "total_tokens": vectors.tokens}}


def _name(model: str | ModelEntry) -> str:
    return model.id if isinstance(model, ModelEntry) else model


def _texts(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    if isinstance(value, str):
        return [value]
    if all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise BadRequestError("input: token ids are not supported (the tokenizer is the "
                          "embedder's own); send the text itself")


def _encoded(row: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in row]


# -- listing -----------------------------------------------------------------------------


def _ollama_details() -> dict[str, Any]:
    return {"parent_model": "", "format": "safetensors", "family": "bert", "families": ["bert"],
            "parameter_size": "23M", "quantization_level": "F32"}


def ollama_tags(settings: Settings, modified: str) -> list[dict[str, Any]]:
    """The embedding models as /api/tags entries."""
    return [{"name": n, "model": n, "modified_at": modified, "size": 0,
             "digest": _digest(n), "details": _ollama_details()}
            for n in embed_model_names(settings)]


def ollama_show(settings: Settings, name: str, modified: str) -> dict[str, Any]:
    """/api/show for an embedding model: its only capability is `embedding`."""
    return {"modelfile": f"# {name}: {embed_description(settings)}\n", "parameters": "",
            "template": "", "details": _ollama_details(),
            "model_info": {"general.architecture": "bert", "mirador.kind": "embedding"},
            "capabilities": ["embedding"], "modified_at": modified}


def openai_models(settings: Settings, created: int) -> list[dict[str, Any]]:
    """The embedding models as /v1/models entries (with Mirador's `capabilities`)."""
    return [{"id": n, "object": "model", "created": created, "owned_by": "mirador",
             "capabilities": ["embedding"]} for n in embed_model_names(settings)]


def _digest(name: str) -> str:
    import hashlib

    return hashlib.sha256(f"embed:{name}".encode()).hexdigest()
