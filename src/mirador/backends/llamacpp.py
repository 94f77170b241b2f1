"""The embedded default: GGUF models run in-process by llama.cpp (llama-cpp-python).

llama.cpp calls block, so each generation runs in a worker thread that hands
pieces to the event loop through a queue. Closing the stream sets a flag the
worker checks after every token, so generation stops within a token and the
model is free again. One lock per loaded model keeps two streams from
sharing a context at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirador.backends.base import BackendEvent, ChatRequest, Finished, LoadedModel, TextPiece
from mirador.backends.chat_format import Formatter, formatter_for
from mirador.errors import ModelFileError, ModelLoadError
from mirador.models.manifest import ModelEntry, SamplingOptions
from mirador.models.packaged import Progress, packaged_gguf, stderr_progress
from mirador.settings import Settings

_GGUF_MAGIC = b"GGUF"
_DONE = object()


@dataclass
class _Loaded:
    llm: Any  # llama_cpp.Llama
    formatter: Formatter
    path: Path
    size_bytes: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LlamaCppBackend:
    """Runs GGUF files in this process."""

    name = "llamacpp"

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
        assert model.package is not None  # the manifest guarantees a path or a package
        return packaged_gguf(model.package, self._settings.models_dir, self._progress)

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
        _quiet_llama_logs()
        from llama_cpp import Llama

        cfg = self._settings.config.backends.llamacpp
        threads = cfg.n_threads or os.cpu_count() or 1
        try:
            llm = Llama(model_path=str(path), n_ctx=min(model.context_length, cfg.n_ctx),
                        n_threads=threads, n_threads_batch=threads, n_batch=cfg.n_batch,
                        verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load model '{model.id}' from {path} "
                                 f"({exc}); check that it is a complete GGUF file that this "
                                 "llama.cpp version supports") from None
        bos = _token_text(llm, llm.token_bos())
        eos = _token_text(llm, llm.token_eos())
        formatter = formatter_for(llm.metadata, bos, eos)
        return _Loaded(llm=llm, formatter=formatter, path=path, size_bytes=path.stat().st_size)

    async def unload(self, model: ModelEntry) -> None:
        loaded = self._models.pop(model.id, None)
        if loaded is not None:
            async with loaded.lock:  # wait for a running stream to finish first
                loaded.llm.close()

    async def loaded(self) -> list[LoadedModel]:
        return [LoadedModel(model_id=mid, size_bytes=m.size_bytes, backend=self.name,
                            detail=str(m.path)) for mid, m in self._models.items()]

    async def aclose(self) -> None:
        for model_id in list(self._models):
            loaded = self._models.pop(model_id)
            async with loaded.lock:
                loaded.llm.close()

    # -- generation --------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        loaded = await self._get(request.model)
        async with loaded.lock, contextlib.aclosing(self._stream_locked(loaded, request)) as events:
            async for event in events:
                yield event

    async def _stream_locked(self, loaded: _Loaded, request: ChatRequest
                             ) -> AsyncIterator[BackendEvent]:
        prompt = loaded.formatter(request.messages)
        tokens = loaded.llm.tokenize(prompt.text.encode("utf-8"), add_bos=not prompt.has_bos,
                                     special=True)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        kwargs = _completion_kwargs(request.options, prompt.stop)
        worker = loop.run_in_executor(
            None, _generate, loaded.llm, tokens, kwargs, cancel, emit)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise ModelLoadError(f"llama.cpp failed while generating: {item}") from item
                yield item
        finally:
            cancel.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(worker)  # the model is free only once the worker is done


def _generate(llm: Any, tokens: list[int], kwargs: dict[str, Any], cancel: threading.Event,
              emit: Callable[[Any], None]) -> None:
    """Worker thread: run llama.cpp and emit pieces until done or cancelled."""
    started = time.perf_counter()
    count = 0
    reason = "stop"
    try:
        stream = llm.create_completion(tokens, stream=True, **kwargs)
        try:
            for chunk in stream:
                if cancel.is_set():
                    reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                if choice.get("finish_reason"):  # the closing chunk carries no new token
                    reason = choice["finish_reason"]
                    if not choice["text"]:
                        continue
                count += 1
                if choice["text"]:
                    emit(TextPiece(choice["text"]))
        finally:
            stream.close()
        if cancel.is_set():
            reason = "cancelled"
        seconds = time.perf_counter() - started
        emit(Finished(reason=reason, prompt_tokens=len(tokens), completion_tokens=count,
                      timings={"seconds": seconds}))
    except Exception as exc:  # handed to the event loop, which raises it there
        emit(exc)
    finally:
        emit(_DONE)


def _completion_kwargs(options: SamplingOptions, stops: tuple[str, ...]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"stop": list(stops) + list(options.stop or [])}
    for key in ("temperature", "top_p", "top_k", "repeat_penalty", "max_tokens", "seed"):
        value = getattr(options, key)
        if value is not None:
            kwargs[key] = value
    kwargs.setdefault("max_tokens", 512)
    return kwargs


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


_log_sink: Any = None


def _quiet_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging (debug) instead of the terminal."""
    global _log_sink
    if _log_sink is not None:
        return
    import ctypes
    import logging

    import llama_cpp

    log = logging.getLogger("mirador.llamacpp")

    @llama_cpp.llama_log_callback  # type: ignore[misc]
    def sink(level: int, text: bytes, user_data: Any) -> None:
        log.debug(text.decode("utf-8", errors="replace").rstrip())

    _log_sink = sink  # a reference, so the callback is never garbage-collected
    llama_cpp.llama_log_set(sink, ctypes.c_void_p(0))
