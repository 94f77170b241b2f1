"""The embedded default: GGUF models run in-process by llama.cpp (llama-cpp-python).

llama.cpp calls block, so each generation runs in a worker thread that hands
pieces to the event loop through a queue. Closing the stream sets a flag the
worker checks after every token, so generation stops within a token and the
model is free again. One lock per loaded model keeps two streams from
sharing a context at once.

llama-cpp-python's high-level API (0.3.x) decodes one sequence per context. With
`backends.llamacpp.sequences` S > 1 a loaded chat model also gets a `BatchEngine`
(`llamacpp_batch.py`): a second context on the same weights that decodes up to S
streams together, one token of each per step. The backend says how many streams a
model serves at once (`sequences`) and the model manager queues the rest first in,
first out. A request the engine cannot run as asked (LoRA adapters, which are set
per context; speculative decoding; a thread count other than the configured one)
runs on the `Llama` context instead, one such request at a time, beside the engine.
Tokenizing runs in worker threads too: a long prompt must not stall the server.

LoRA adapters ride on the loaded base model: each is read once (llama.cpp's
`llama_adapter_lora_init`) and switched per request on the model's one
context (`llama_set_adapters_lora`), so personas with different adapters
share the base weights. Switching adapters resets the prompt cache, whose
keys and values were computed with the old ones.

Tools (`ChatRequest.tools`): the model has no native tool calls, so it is shown
the tools in its system prompt and a grammar makes it reply with one JSON
choice, a call or an answer (see `tool_calls.py`), read whole and yielded as a
`ToolCallRequest` or the answer's text; once a tool's result is the last turn,
it answers in prose, streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mirador import warmstart
from mirador.backends import entry_problem, tool_calls
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
from mirador.backends.chat_format import Formatter, formatter_for
from mirador.backends.llamacpp_adapters import (
    activate,
    adapter_path,
    free_adapter,
    init_adapter,
    set_adapters,
)
from mirador.backends.llamacpp_batch import DONE, BatchEngine, Job
from mirador.backends.llamacpp_speculative import prefill_blocking, set_threads, speculating
from mirador.catalog.gguf_info import read_gguf_info
from mirador.catalog.manifest import LoraAdapter, ModelEntry, SamplingOptions
from mirador.catalog.packaged import Progress, packaged_gguf, stderr_progress
from mirador.catalog.sizes import estimate_gguf
from mirador.errors import (
    BackendError,
    ConfigError,
    ContextOverflowError,
    ModelFileError,
    ModelLoadError,
    report_unexpected,
)
from mirador.host import release_freed_memory
from mirador.settings import Settings
from mirador.warmstart import llama_threads, quiet_llama_logs

_GGUF_MAGIC = b"GGUF"
_DONE = DONE
log = logging.getLogger("mirador.llamacpp")


@dataclass
class _Loaded:
    llm: Any  # llama_cpp.Llama
    formatter: Formatter
    path: Path
    size_bytes: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    adapters: dict[str, Any] = field(default_factory=dict)  # path -> llama_adapter_lora_p
    active: tuple[tuple[str, float], ...] = ()  # the adapters set on the context now
    threads: int = 0  # the context's thread count now
    default_threads: int = 0  # the configured one, for requests that name none
    spare: list[Any] = field(default_factory=list)  # speculation's full scores array, once made
    engine: BatchEngine | None = None  # several streams at once (sequences > 1)

    def close(self) -> None:
        """Free the engine and adapters (before the model that owns them), then the model."""
        if self.engine is not None:
            self.engine.close()
        if self.adapters:
            set_adapters(self, ())
            import llama_cpp

            for adapter in self.adapters.values():
                llama_cpp.llama_adapter_lora_free(adapter)
            self.adapters.clear()
        self.llm.close()


class LlamaCppBackend:
    """Runs GGUF files in this process."""

    name = "llamacpp"
    capabilities = Capabilities(in_process=True, estimates_memory=True, counts_tokens=True,
                                adapters=True, embeds=True, takes_turns=True,
                                sizes_context=True, tools=True, speculative=True,
                                threads=True, prefills=True)

    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self._settings = settings
        self._progress = progress or stderr_progress("Preparing the default model (once)")
        self._models: dict[str, _Loaded] = {}
        self._loading: dict[str, asyncio.Task[_Loaded]] = {}

    # -- loading ---------------------------------------------------------------

    def model_path(self, model: ModelEntry) -> Path:
        """The GGUF file for `model`, assembling a packaged one on first use."""
        if model.path:
            return Path(model.path).expanduser()
        if model.package is None:  # what llamacpp needs is declared in its BackendSpec
            raise ConfigError(f"{entry_problem(model)} in ~/.mirador/manifest.yaml")
        return packaged_gguf(model.package, self._settings.models_dir, self._progress)

    def context_size(self, model: ModelEntry) -> int:
        return min(model.context_length, self._settings.config.backends.llamacpp.n_ctx)

    def sequences(self, model: ModelEntry) -> int:
        """Streams one loaded model serves at once: `backends.llamacpp.sequences` for a chat
        model, one for an embedding model (see the module docstring)."""
        return 1 if model.embedding else self._settings.config.backends.llamacpp.sequences

    def estimate_bytes(self, model: ModelEntry) -> int:
        """Weights + KV cache + buffers, from the GGUF header (blocking: it may assemble).
        With S > 1 sequences the engine's context adds S windows of n_ctx: (1 + S) KV caches."""
        info = read_gguf_info(self.model_path(model))
        n_batch = self._settings.config.backends.llamacpp.n_batch
        estimate = estimate_gguf(info, self.context_size(model), n_batch)
        sequences = self.sequences(model)
        return estimate.total + (estimate.kv_cache * sequences if sequences > 1 else 0)

    def load_key(self, model: ModelEntry, path: Path | None = None) -> warmstart.LoadKey:
        """The file (`path`, else found) and parameters `model` loads with (what a warm
        start is keyed by)."""
        cfg = self._settings.config.backends.llamacpp
        threads, batch_threads = llama_threads(cfg.n_threads)
        return warmstart.LoadKey.of(path or self.model_path(model),
                                    n_ctx=self.context_size(model),
                                    n_threads=threads, n_threads_batch=batch_threads,
                                    n_batch=cfg.n_batch, embedding=model.embedding)

    def prompt_prefix(self, model: ModelEntry, messages: Sequence[Message]
                      ) -> warmstart.Prefix | None:
        """How the prompt of `messages` begins, up to the last message's text: for a first
        stage's chat, what every question's prompt shares (`warmstart.Prefix`). None when
        `model` is not loaded here or its template does not show that text as it is."""
        loaded = self._models.get(model.id)
        if loaded is None or not messages:
            return None
        prompt = loaded.formatter(messages)
        cut = prompt.text.rfind(messages[-1].content)
        return warmstart.Prefix(prompt.text[:cut], add_bos=not prompt.has_bos) if cut > 0 else None

    async def load(self, model: ModelEntry) -> None:
        await self._get(model)

    async def _get(self, model: ModelEntry) -> _Loaded:
        if model.id in self._models:
            return self._models[model.id]
        task = self._loading.get(model.id)
        if task is None:  # concurrent requests for one model share one load
            task = asyncio.ensure_future(asyncio.to_thread(self._load_blocking, model))
            self._loading[model.id] = task
        try:
            loaded = await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(model.id, None)
        self._models[model.id] = loaded
        return loaded

    def _load_blocking(self, model: ModelEntry) -> _Loaded:
        path = self.model_path(model)
        _check_gguf_file(path, model.id)
        quiet_llama_logs()
        from llama_cpp import Llama

        key = self.load_key(model, path)
        try:  # a `mirador ask` may have started this very load at its first moment
            llm = warmstart.adopt(key) or Llama(**key.llama_kwargs())
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load model '{model.id}' from {path} "
                                 f"({exc}); check that it is a complete GGUF file that this "
                                 "llama.cpp version supports") from None
        bos = _token_text(llm, llm.token_bos())
        eos = _token_text(llm, llm.token_eos())
        formatter = formatter_for(llm.metadata, bos, eos)
        sequences = self.sequences(model)
        threads = key.n_threads
        engine = BatchEngine(llm, sequences, threads, key.n_ctx
                             ) if sequences > 1 else None
        return _Loaded(llm=llm, formatter=formatter, path=path, size_bytes=path.stat().st_size,
                       threads=threads, default_threads=threads, engine=engine)

    async def unload(self, model: ModelEntry) -> None:
        loaded = self._models.pop(model.id, None)
        if loaded is not None:
            async with loaded.lock:  # wait for a running stream to finish first
                await asyncio.to_thread(_close, loaded)

    # -- LoRA adapters -----------------------------------------------------------

    async def load_adapter(self, model: ModelEntry, lora: LoraAdapter) -> None:
        """Read `lora` for `model` (loading the model first) so requests can switch to it."""
        loaded = await self._get(model)
        path = adapter_path(lora)
        if path in loaded.adapters:
            return
        async with loaded.lock:
            if path not in loaded.adapters:
                await asyncio.to_thread(init_adapter, loaded, model.id, path)

    async def unload_adapter(self, model: ModelEntry, lora: LoraAdapter) -> None:
        loaded = self._models.get(model.id)
        path = adapter_path(lora)
        if loaded is None or path not in loaded.adapters:
            return
        async with loaded.lock:
            await asyncio.to_thread(free_adapter, loaded, path)

    async def use_adapters(self, model: ModelEntry, loras: tuple[LoraAdapter, ...]) -> None:
        """Set exactly `loras` on the model's context now (a request does this first)."""
        loaded = await self._get(model)
        async with loaded.lock:
            await asyncio.to_thread(activate, loaded, model.id, loras)

    def adapters(self, model: ModelEntry) -> list[str]:
        """Paths of the adapters read for `model`."""
        loaded = self._models.get(model.id)
        return list(loaded.adapters) if loaded else []

    async def loaded(self) -> list[LoadedModel]:
        return [LoadedModel(model_id=mid, size_bytes=m.size_bytes, backend=self.name,
                            detail=str(m.path)) for mid, m in self._models.items()]

    async def aclose(self) -> None:
        for model_id in list(self._models):
            loaded = self._models.pop(model_id)
            async with loaded.lock:
                await asyncio.to_thread(_close, loaded)

    async def count_tokens(self, model: ModelEntry, text: str) -> int:
        """How many tokens `text` is for `model`, by its own tokenizer (loads it if needed)."""
        loaded = await self._get(model)
        tokens = await asyncio.to_thread(loaded.llm.tokenize, text.encode("utf-8"),
                                         add_bos=False, special=False)
        return len(tokens)

    # -- generation --------------------------------------------------------------

    async def embed(self, model: ModelEntry, texts: list[str], truncate: bool = True
                    ) -> Embedded:
        """Vectors from an embedding model (loaded with `embedding=True`): the model's own
        pooling, or the mean of its token vectors when it has none; unit length."""
        if not model.embedding:
            raise BackendError(f"model '{model.id}' is not an embedding model; set "
                               "'embedding: true' on it in ~/.mirador/manifest.yaml")
        loaded = await self._get(model)
        async with loaded.lock:
            return await asyncio.to_thread(_embed_blocking, loaded.llm, model.id, texts,
                                           truncate)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        if any(m.images for m in request.messages):
            raise ConfigError(f"model '{request.model.id}' runs on llama.cpp here, which cannot "
                              "show it images; send images to a vision model on Ollama or an "
                              "OpenAI-compatible server")
        loaded = await self._get(request.model)
        if _batchable(loaded, request):
            async with contextlib.aclosing(self._stream_batched(loaded, request)) as events:
                async for event in events:
                    yield event
            return
        async with loaded.lock, contextlib.aclosing(self._stream_locked(loaded, request)) as events:
            async for event in events:
                yield event

    async def prefill(self, request: ChatRequest) -> int:
        """Read `request`'s prompt into the model's cache (see `llamacpp_speculative`)."""
        loaded = await self._get(request.model)
        async with loaded.lock:
            await asyncio.to_thread(activate, loaded, request.model.id, request.loras)
            prompt = loaded.formatter(request.messages)
            work = asyncio.ensure_future(asyncio.to_thread(
                prefill_blocking, loaded.llm, prompt.text, not prompt.has_bos))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:  # the context is free only once the thread is done
                await work
                raise

    async def _stream_locked(self, loaded: _Loaded, request: ChatRequest
                             ) -> AsyncGenerator[BackendEvent, None]:
        await asyncio.to_thread(activate, loaded, request.model.id, request.loras)
        request, tokens, stops, choosing = await _prepared(loaded, request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        kwargs = await _kwargs(request, stops)
        if request.options.seed is not None:
            # A prompt evaluated partly from the cache gives logits a rounding apart from one
            # evaluated whole, enough to change a sampled token: with a seed, evaluate it whole.
            loaded.llm.reset()
        _use_threads(loaded, request.threads)
        with speculating(loaded.llm, request.speculative, loaded.spare):
            worker = loop.run_in_executor(
                None, _generate, loaded.llm, tokens, kwargs, cancel, emit)
            try:
                async for event in _relayed(queue, choosing):
                    yield event
            finally:
                cancel.set()
                await _worker_done(worker)  # the model is free only once the worker is done

    async def _stream_batched(self, loaded: _Loaded, request: ChatRequest
                              ) -> AsyncGenerator[BackendEvent, None]:
        """`request` as one sequence of the model's batch engine (every prompt is read
        whole there, so a seed gives what it gives one at a time from a fresh cache)."""
        assert loaded.engine is not None
        request, tokens, stops, choosing = await _prepared(loaded, request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        ended = False

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        loaded.engine.submit(Job(tokens, await _kwargs(request, stops), cancel, emit))
        try:
            async for event in _relayed(queue, choosing):
                yield event
            ended = True
        finally:
            cancel.set()
            if not ended:  # the turn ends once the engine has freed the sequence
                await _drained(queue)


def _batchable(loaded: _Loaded, request: ChatRequest) -> bool:
    """Whether the batch engine runs `request` as asked (else the `Llama` context does)."""
    return (loaded.engine is not None and not request.loras and request.speculative is None
            and request.threads in (None, loaded.default_threads))


async def _prepared(loaded: _Loaded, request: ChatRequest
                    ) -> tuple[ChatRequest, list[int], tuple[str, ...], bool]:
    """The request as the model sees it (tools described in the prompt and chosen by
    grammar), its prompt's tokens, the template's stop strings, and whether a tool choice
    is being read."""
    choosing = tool_calls.wants_choice(request.messages, request.tools)
    if request.tools:  # no native tool calls: described in the prompt, chosen by grammar
        fmt = tool_calls.choice_format(request.tools) if choosing else request.format
        options = request.options.model_copy(update={"stop": None}) if choosing else None
        request = replace(request, messages=tool_calls.prompted(
            request.messages, request.tools, choosing), format=fmt,
            options=options or request.options)
    prompt = loaded.formatter(request.messages)
    tokens = await asyncio.to_thread(loaded.llm.tokenize, prompt.text.encode("utf-8"),
                                     add_bos=not prompt.has_bos, special=True)
    _check_fits(tokens, loaded.llm.n_ctx(), request.model.id)
    return request, tokens, prompt.stop, choosing


async def _kwargs(request: ChatRequest, stops: tuple[str, ...]) -> dict[str, Any]:
    """`create_completion`'s sampling arguments for `request`, its grammar included."""
    kwargs = _completion_kwargs(request.options, stops)
    if request.format is not None:
        kwargs["grammar"] = await asyncio.to_thread(_grammar, request.format)
    return kwargs


async def _relayed(queue: asyncio.Queue[Any], choosing: bool
                   ) -> AsyncGenerator[BackendEvent, None]:
    """The events a generation thread queues, until it is done; a tool choice is read
    whole, then parsed."""
    chosen: list[str] = []
    while (item := await queue.get()) is not _DONE:
        if isinstance(item, BaseException):
            raise ModelLoadError(f"llama.cpp failed while generating: {item}") from item
        if choosing and isinstance(item, TextPiece):
            chosen.append(item.text)
            continue
        if choosing and isinstance(item, Finished) and item.reason != "cancelled":
            yield tool_calls.parse_choice("".join(chosen))
        yield item


async def _drained(queue: asyncio.Queue[Any]) -> None:
    """Wait for a cancelled job's last item (the engine frees its sequence within a step)."""
    while await queue.get() is not _DONE:
        pass


def _use_threads(loaded: _Loaded, threads: int | None) -> None:
    """Run the request on `threads` (the configured count when None); a C call, no reload."""
    wanted = threads or loaded.default_threads
    if wanted != loaded.threads:
        set_threads(loaded.llm, wanted)
        loaded.threads = wanted


async def _worker_done(worker: asyncio.Future[None]) -> None:
    """Wait for a generation's worker thread to end. `_generate` hands its own errors to
    the stream, so nothing is expected here but cancellation (which propagates); anything
    else is a bug, logged (with the traceback under MIRADOR_DEBUG=1) rather than raised
    over the exception, if any, that is ending the stream."""
    try:
        await asyncio.shield(worker)
    except Exception as exc:
        report_unexpected(log, "llama.cpp's generation thread failed", exc)


def _generate(llm: Any, tokens: list[int], kwargs: dict[str, Any], cancel: threading.Event,
              emit: Callable[[Any], None]) -> None:
    """Worker thread: run llama.cpp and emit pieces until done or cancelled."""
    started = time.perf_counter()
    seen = _Seen(len(tokens))
    reason: Any = "stop"  # llama.cpp's finish_reason: "stop" or "length"
    try:
        from llama_cpp import StoppingCriteriaList

        # Checked after every token, even one whose bytes do not make text yet (and so
        # yield no chunk), so closing the stream stops generation within a token; it
        # also counts the tokens generated and times the first.
        stream = llm.create_completion(tokens, stream=True,
                                       stopping_criteria=StoppingCriteriaList([seen.check(cancel)]),
                                       **kwargs)
        try:
            for chunk in stream:
                if cancel.is_set():
                    reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                reason = choice.get("finish_reason") or reason  # the closing chunk's
                if choice["text"]:
                    emit(TextPiece(choice["text"]))
        finally:
            stream.close()
        emit(seen.finished("cancelled" if cancel.is_set() else reason, started))
    except Exception as exc:  # handed to the event loop, which raises it there
        emit(exc)
    finally:
        emit(_DONE)


@dataclass
class _Seen:
    """Tokens a generation has produced, counted as llama.cpp samples them."""

    prompt: int
    generated: int = 0
    first: float | None = None  # when the first token was sampled

    def check(self, cancel: threading.Event) -> Callable[[Any, Any], bool]:
        def stop_if_cancelled(ids: Any, _logits: Any) -> bool:
            # `ids` holds the prompt and the tokens evaluated so far, not the one just sampled
            self.generated = len(ids) - self.prompt + 1
            self.first = self.first or time.perf_counter()
            return cancel.is_set()

        return stop_if_cancelled

    def finished(self, reason: Any, started: float) -> Finished:
        now = time.perf_counter()
        first = self.first or now
        return Finished(reason=reason, prompt_tokens=self.prompt,
                        completion_tokens=self.generated,
                        timings={"seconds": now - started, "prompt_seconds": first - started,
                                 "eval_seconds": now - first})


def _embed_blocking(llm: Any, model_id: str, texts: list[str], truncate: bool) -> Embedded:
    import numpy as np

    limit = llm.n_batch
    counts = [len(llm.tokenize(t.encode("utf-8"))) for t in texts]
    for index, count in enumerate(counts):
        if count > limit and not truncate:
            raise ContextOverflowError(f"input {index} is {count} tokens, more than model "
                                       f"'{model_id}' embeds at once ({limit}); shorten it "
                                       "or send truncate: true")
    vectors = []
    for text in texts:  # one at a time: llama.cpp's batch is the model's, not the request's
        raw = np.asarray(llm.embed(text, truncate=True), dtype=np.float64)
        row = raw.mean(axis=0) if raw.ndim == 2 else raw  # token vectors: mean pooling
        norm = float(np.linalg.norm(row))
        vectors.append([float(x) for x in (row / norm if norm else row)])
    return Embedded(vectors=vectors, tokens=sum(min(c, limit) for c in counts))


def _check_fits(tokens: list[int], n_ctx: int, model_id: str) -> None:
    """A prompt must leave room for at least one generated token."""
    if len(tokens) >= n_ctx:
        raise ContextOverflowError(
            f"the prompt is {len(tokens)} tokens but model '{model_id}' has a context window "
            f"of {n_ctx} tokens; send a shorter prompt or fewer earlier turns")


def _close(loaded: _Loaded) -> None:
    loaded.close()
    release_freed_memory()


def _completion_kwargs(options: SamplingOptions, stops: tuple[str, ...]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"stop": list(stops) + list(options.stop or [])}
    for key in ("temperature", "top_p", "top_k", "repeat_penalty", "max_tokens", "seed"):
        value = getattr(options, key)
        if value is not None:
            kwargs[key] = value
    kwargs.setdefault("max_tokens", 512)
    return kwargs


# llama-cpp-python's converter lets a string hold raw control characters (a newline, a
# tab), which JSON forbids; strings here take them only escaped.
_ANY_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def json_grammar(fmt: ResponseFormat) -> Any:
    """llama.cpp's grammar for `fmt`: any JSON object, or JSON matching its schema.

    ValueError, saying what is wrong, for a schema llama.cpp cannot turn into a grammar."""
    import json

    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = fmt.schema if fmt.schema is not None else {"type": "object"}
    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, TypeError, RuntimeError, AssertionError) as exc:
        raise ValueError(f"the JSON schema cannot be used for constrained decoding "
                         f"({type(exc).__name__}: {exc}); send a simpler schema (objects, "
                         "arrays, strings, numbers, enums, required properties)") from None
    return LlamaGrammar.from_string(gbnf.replace(_ANY_CHAR, _JSON_CHAR), verbose=False)


def _grammar(fmt: ResponseFormat) -> Any:
    try:
        return json_grammar(fmt)
    except ValueError as exc:
        raise BackendError(str(exc)) from None


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")


def _check_gguf_file(path: Path, model_id: str) -> None:
    """Fail early, and clearly, on a missing or non-GGUF file."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        raise ModelFileError(f"model '{model_id}': {path} does not exist; fix its 'path' in "
                             "the manifest or put the GGUF file there") from None
    except OSError as exc:
        raise ModelFileError(f"model '{model_id}': cannot read {path} ({exc.strerror})") from None
    if magic != _GGUF_MAGIC:
        raise ModelFileError(f"model '{model_id}': {path} is not a GGUF file (it does not start "
                             "with 'GGUF'); it may be corrupt or another format: download it again")


