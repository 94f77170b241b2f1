"""A cold `mirador ask` starts loading its first model before Mirador itself is imported.

Reading the settings and the manifest needs Mirador's own modules (pydantic models,
the orchestrator): a few tenths of a second before anyone knows which model the
first stage uses. So each `ask` that warms its first stage's llama.cpp model leaves
a hint in the home (`cache/first-model.json`: the GGUF's path, size and mtime, and
the load parameters), and the next `mirador ask` reads it from its first moment,
with nothing but the standard library, and starts that load in a daemon thread
while its modules import. The llama.cpp backend adopts the loaded model only when
its own parameters for the first stage are exactly the hint's (`adopt`); any other
model it loads itself, and a prefetched model nobody adopts is freed.

A hint never decides anything: a changed config, manifest or file only means the
prefetch was wasted (one load on another core), never a wrong model. A first
`ask` in a new home has no hint and loads the usual way.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mirador.atomic import write_json_atomic

HINT = Path("cache") / "first-model.json"


@dataclass(frozen=True)
class LoadKey:
    """Everything a llama.cpp load depends on: the file as it is now, and the parameters."""

    path: str
    size: int
    mtime_ns: int
    n_ctx: int
    n_threads: int
    n_threads_batch: int
    n_batch: int
    embedding: bool

    @classmethod
    def of(cls, path: Path, **params: Any) -> LoadKey:
        stat = path.stat()
        return cls(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, **params)

    def current(self) -> bool:
        """Whether the file is still the one the hint describes."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (self.size, self.mtime_ns)

    def llama_kwargs(self) -> dict[str, Any]:
        return {"model_path": self.path, "n_ctx": self.n_ctx, "n_threads": self.n_threads,
                "n_threads_batch": self.n_threads_batch, "n_batch": self.n_batch,
                "embedding": self.embedding, "verbose": False}


_lock = threading.Lock()
_pending: tuple[LoadKey, Future[Any]] | None = None


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """The Mirador home: `$MIRADOR_HOME`, else `~/.mirador`."""
    explicit = env.get("MIRADOR_HOME")
    return Path(explicit).expanduser() if explicit else Path.home() / ".mirador"


def read_hint(home: Path) -> LoadKey | None:
    """The hint the last answer left, if it is readable and its file unchanged."""
    try:
        key = LoadKey(**json.loads((home / HINT).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return key if key.current() else None


def remember(home: Path, key: LoadKey) -> None:
    """Leave `key` as the hint for the next `ask` (written only when it changed)."""
    if read_hint(home) != key:
        with contextlib.suppress(OSError):  # a read-only home only loses the head start
            write_json_atomic(home / HINT, asdict(key))


def start(home: Path, load: Callable[[LoadKey], Any] | None = None) -> bool:
    """Begin loading the hinted model in a daemon thread; False when there is no hint.

    `load(key)` makes the model (by default llama.cpp's `Llama`, whose binding is
    imported here first, before the thread starts: importing is Python work that
    would only take turns with the caller's own imports, while the load itself runs
    in C, beside them)."""
    global _pending
    key = read_hint(home)
    if key is None:
        return False
    if load is None:
        try:
            quiet_llama_logs()  # imports llama_cpp
        except ImportError:
            return False  # the backend says so if it is used
    future: Future[Any] = Future()
    with _lock:
        if _pending is not None:
            return False
        _pending = (key, future)
    threading.Thread(target=_run, args=(key, future, load or _llama), daemon=True,
                     name="mirador-warm-start").start()
    return True


def adopt(key: LoadKey) -> Any | None:
    """The prefetched model if it was loaded with exactly `key` (waiting for it to finish);
    else None, and a prefetch for another key is freed once it is done. Taken once."""
    global _pending
    with _lock:
        pending, _pending = _pending, None
    if pending is None:
        return None
    hinted, future = pending
    if hinted != key:
        future.add_done_callback(_free)
        return None
    try:
        return future.result()
    except Exception:  # noqa: BLE001 - the caller loads it again and reports what fails
        return None


def discard() -> None:
    """Free a prefetched model nobody will adopt (say, a running server answers)."""
    global _pending
    with _lock:
        pending, _pending = _pending, None
    if pending is not None:
        pending[1].add_done_callback(_free)


def _run(key: LoadKey, future: Future[Any], load: Callable[[LoadKey], Any]) -> None:
    future.set_running_or_notify_cancel()
    try:
        future.set_result(load(key))
    except BaseException as exc:  # noqa: BLE001 - handed to `adopt`, which loads again
        future.set_exception(exc)


def _llama(key: LoadKey) -> Any:
    from llama_cpp import Llama

    return Llama(**key.llama_kwargs())


def _free(future: Future[Any]) -> None:
    if future.exception() is None:
        close = getattr(future.result(), "close", None)
        if close is not None:
            close()


_log_sink: Any = None
_log_lock = threading.Lock()


def quiet_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging (debug) instead of the terminal."""
    global _log_sink
    with _log_lock:
        if _log_sink is not None:
            return
        import ctypes
        import logging

        import llama_cpp

        log = logging.getLogger("mirador.llamacpp")

        @llama_cpp.llama_log_callback
        def sink(level: int, text: bytes, user_data: Any) -> None:
            log.debug(text.decode("utf-8", errors="replace").rstrip())

        _log_sink = sink  # a reference, so the callback is never garbage-collected
        llama_cpp.llama_log_set(sink, ctypes.c_void_p(0))
