"""A local HTTP server that speaks Ollama's documented API and runs real GGUF models.

Ollama itself cannot be installed on the test machines, so this stands in for
it: `/api/chat` and `/api/generate` (NDJSON streaming and single objects, the
final object carrying done_reason and Ollama's counts and nanosecond
durations), `/api/ps`, `/api/tags`, `/api/version`, `/api/pull` (of the GGUF files
in `library`, with Ollama's progress lines), `{"error": ...}` bodies
with Ollama's status codes, and keep_alive loading and unloading. Text comes
from llama.cpp running the served GGUF files, token by token.

Knobs for tests: `die_after` closes the connection after that many streamed
chunks; `error_after` sends Ollama's mid-stream `{"error": ...}` line instead;
`end_after` ends the response cleanly but without the final object;
`token_delay` paces generation like a bigger model (the tiny test model is
far faster than any real one). `records` tells what each generation did,
including whether the client went away before the end.

    with FakeOllama({"tiny": Path("tiny.gguf")}) as server:
        ollama.Client(host=server.url).chat(model="tiny", messages=[...])
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mirador.backends.base import Message
from mirador.backends.chat_format import Prompt, formatter_for
from tests.support.loopback import LoopbackHTTPServer

# Ollama's own defaults where a request leaves an option out.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1,
            "num_predict": -1, "seed": None, "stop": []}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Record:
    """What one generation did."""

    path: str
    model: str
    options: dict[str, Any]
    prompt: str = ""
    eval_count: int = 0
    done_reason: str = ""
    disconnected: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Loaded:
    llm: Any  # llama_cpp.Llama
    expires: float  # time.monotonic() deadline; inf for "forever"
    fmt: Callable[[list[Message]], Prompt]


@dataclass
class FakeOllama(LoopbackHTTPServer):
    models: dict[str, Path]
    die_after: int | None = None
    error_after: int | None = None
    end_after: int | None = None
    token_delay: float = 0.0
    n_ctx: int = 2048
    records: list[Record] = field(default_factory=list)
    library: dict[str, Path] = field(default_factory=dict)
    pull_delay: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every POST body, in order

    def __post_init__(self) -> None:
        self.models = {_full(name): Path(path) for name, path in self.models.items()}
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.RLock()  # one generation (or load/unload) at a time

    # -- lifecycle -------------------------------------------------------------

    def _bind(self) -> ThreadingHTTPServer:
        return ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"app": self}))

    def stop(self) -> None:
        super().stop()
        with self._lock:
            for name in list(self._loaded):
                self._loaded.pop(name).llm.close()

    def reset(self) -> None:
        """Clear faults and records, and unload everything."""
        self.die_after = self.error_after = self.end_after = None
        self.token_delay = 0.0
        self.records.clear()
        with self._lock:
            for name in list(self._loaded):
                self._loaded.pop(name).llm.close()

    # -- endpoints -------------------------------------------------------------

    def ps(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            for name in [n for n, m in self._loaded.items() if m.expires <= now]:
                self._loaded.pop(name).llm.close()
            return {"models": [dict(self._describe(name), expires_at=_expiry(m.expires),
                                    size_vram=0) for name, m in self._loaded.items()]}

    def tags(self) -> dict[str, Any]:
        return {"models": [dict(self._describe(name), modified_at=_now()) for name in self.models]}

    def pull(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Ollama's pull progress for a tag in `library`; afterwards the tag is served."""
        name = _full(str(body.get("model") or body.get("name") or ""))
        yield {"status": "pulling manifest"}
        library = {_full(n): Path(p) for n, p in self.library.items()}
        if name not in library:
            yield {"error": "pull model manifest: file does not exist"}
            return
        data = library[name].read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        for quarter in range(5):
            time.sleep(self.pull_delay)
            yield {"status": f"pulling {digest[7:19]}", "digest": digest, "total": len(data),
                   "completed": len(data) * quarter // 4}
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            yield {"status": status}
        self.models[name] = library[name]

    def chat(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        name = self._model_name(body)
        messages = [Message(m["role"], m.get("content", "")) for m in body.get("messages") or []]
        if not messages:
            yield self._load_or_unload(name, body, {"message": _assistant("")})
            return
        with closing(self._generate(name, body, "/api/chat", lambda fmt: fmt(messages))) as run:
            for piece, final in run:
                yield dict(final or {}, message=_assistant(piece), done=final is not None)

    def generate(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        name = self._model_name(body)
        prompt = body.get("prompt") or ""
        if not prompt:
            yield self._load_or_unload(name, body, {"response": ""})
            return
        system = [Message("system", body["system"])] if body.get("system") else []
        turns = system + [Message("user", prompt)]

        def render(fmt: Callable[[list[Message]], Prompt]) -> Prompt:
            return Prompt(prompt, stop=(), has_bos=False) if body.get("raw") else fmt(turns)

        with closing(self._generate(name, body, "/api/generate", render)) as run:
            for piece, final in run:
                yield dict(final or {}, response=piece, done=final is not None)

    # -- models ------------------------------------------------------------------

    def _model_name(self, body: dict[str, Any]) -> str:
        if not body.get("model"):
            raise ApiError(400, "model is required")
        if _full(body["model"]) not in self.models:
            raise ApiError(404, f"model '{body['model']}' not found")
        return _full(body["model"])

    def _load(self, name: str) -> tuple[_Loaded, int]:
        """The loaded model and the nanoseconds spent loading it now (0 if it was loaded)."""
        if name in self._loaded:
            return self._loaded[name], 0
        from llama_cpp import Llama

        started = time.perf_counter_ns()
        llm = Llama(model_path=str(self.models[name]), n_ctx=self.n_ctx, n_threads=1,
                    n_threads_batch=1, verbose=False)
        fmt = formatter_for(llm.metadata, _text(llm, llm.token_bos()), _text(llm, llm.token_eos()))
        self._loaded[name] = _Loaded(llm, math.inf, fmt)
        return self._loaded[name], time.perf_counter_ns() - started

    def _keep(self, name: str, keep_alive: Any) -> None:
        seconds = _keep_alive_seconds(keep_alive)
        if seconds == 0:
            self._loaded.pop(name).llm.close()
        else:
            self._loaded[name].expires = time.monotonic() + seconds

    def _load_or_unload(self, name: str, body: dict[str, Any], extra: dict[str, Any]
                        ) -> dict[str, Any]:
        with self._lock:
            seconds = _keep_alive_seconds(body.get("keep_alive"))
            if seconds == 0 and name not in self._loaded:
                reason = "unload"
            else:
                self._load(name)
                self._keep(name, body.get("keep_alive"))
                reason = "unload" if seconds == 0 else "load"
        return dict(extra, model=body["model"], created_at=_now(), done=True, done_reason=reason)

    def _describe(self, name: str) -> dict[str, Any]:
        path = self.models[name]
        return {"name": name, "model": name, "size": path.stat().st_size,
                "digest": hashlib.sha256(str(path).encode()).hexdigest(),
                "details": {"parent_model": "", "format": "gguf", "family": "llama",
                            "families": ["llama"], "parameter_size": "", "quantization_level": ""}}

    # -- generation --------------------------------------------------------------

    def _generate(self, name: str, body: dict[str, Any], path: str,
                  render: Callable[[Callable[[list[Message]], Prompt]], Prompt]
                  ) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(piece, None) per piece of text, then ("", final fields)."""
        options = {**DEFAULTS, **(body.get("options") or {})}
        _keep_alive_seconds(body.get("keep_alive"))  # a bad value is an error before any work
        record = Record(path=path, model=name, options=options)
        self.records.append(record)
        with self._lock:
            started = time.perf_counter_ns()
            try:
                loaded, load_ns = self._load(name)
                prompt = render(loaded.fmt)
                record.prompt = prompt.text
                tokens = loaded.llm.tokenize(prompt.text.encode(), add_bos=not prompt.has_bos,
                                             special=True)
                stats: dict[str, int] = {"prompt_eval_count": len(tokens)}
                for piece in _sample(loaded.llm, tokens, options, prompt.stop, record, stats):
                    yield piece, None
                    time.sleep(self.token_delay)
            except GeneratorExit:
                record.disconnected, record.done_reason = True, "disconnected"
                raise
            finally:
                if name in self._loaded:
                    self._keep(name, body.get("keep_alive"))
                record.finished.set()
        total = time.perf_counter_ns() - started
        yield "", {"model": body["model"], "created_at": _now(), "done_reason": record.done_reason,
                   "total_duration": total, "load_duration": load_ns,
                   "prompt_eval_count": stats["prompt_eval_count"],
                   "prompt_eval_duration": stats.get("prompt_ns", 0),
                   "eval_count": record.eval_count,
                   "eval_duration": total - load_ns - stats.get("prompt_ns", 0)}


def _sample(llm: Any, tokens: list[int], options: dict[str, Any], stops: tuple[str, ...],
            record: Record, stats: dict[str, int]) -> Iterator[str]:
    """Text pieces as llama.cpp samples tokens, honouring num_predict and stop strings."""
    import llama_cpp

    stops = tuple(stops) + tuple(options["stop"] or ())
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    if options["seed"] is not None:
        llm.set_seed(int(options["seed"]))
    limit = int(options["num_predict"])
    text, sent, record.done_reason = "", 0, "length"
    began = time.perf_counter_ns()
    for token in llm.generate(tokens, temp=options["temperature"], top_k=options["top_k"],
                              top_p=options["top_p"], min_p=options.get("min_p", 0.0),
                              repeat_penalty=options["repeat_penalty"]):
        stats.setdefault("prompt_ns", time.perf_counter_ns() - began)
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            record.done_reason = "stop"
            break
        record.eval_count += 1
        text += decoder.decode(llm.detokenize([token], special=True))
        hit = min((text.find(s) for s in stops if s in text), default=-1)
        end = hit if hit >= 0 else len(text) - _partial_stop(text, stops)
        if end > sent:
            yield text[sent:end]
            sent = end
        if hit >= 0:
            record.done_reason = "stop"
            break
        if record.eval_count == limit or len(tokens) + record.eval_count >= llm.n_ctx():
            break


def _partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters might be the start of a stop string (held back)."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        routes: dict[str, Callable[[], Any]] = {
            "/api/ps": self.app.ps, "/api/tags": self.app.tags,
            "/api/version": lambda: {"version": "0.6.0"}}
        if self.path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif self.path in routes:
            self._send_json(200, routes[self.path]())
        else:
            self._send(404, b"404 page not found", "text/plain")

    def do_POST(self) -> None:
        routes = {"/api/chat": self.app.chat, "/api/generate": self.app.generate,
                  "/api/pull": self.app.pull}
        if self.path not in routes:
            self._send(404, b"404 page not found", "text/plain")
            return
        try:
            body = self._body()
            self.app.bodies.append(body)
            stream = body.get("stream", True)
            objects = routes[self.path](body)
            first = next(objects)  # errors before any output still get their status code
        except ApiError as exc:
            self._send_json(exc.status, {"error": str(exc)})
            return
        except Exception as exc:  # a model failure before any output: Ollama answers 500
            self._send_json(500, {"error": f"llama runner process has terminated: {exc}"})
            return
        if stream:
            self._stream(first, objects)
        else:
            self._send_json(200, _merge([first, *objects]))

    def _body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not raw:
            raise ApiError(400, "missing request body")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, str(exc)) from None
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type api.ChatRequest")
        return body

    def _stream(self, first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        app = self.app
        try:
            self._chunk(first)
            for sent, obj in enumerate(rest, start=1):
                if sent == app.die_after:
                    self.close_connection = True
                    return  # no terminating chunk: the client sees a broken stream
                if sent == app.error_after:
                    self._chunk({"error": "an error was encountered while running the model"})
                if sent in (app.error_after, app.end_after):
                    break
                self._chunk(obj)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            rest.close()  # type: ignore[attr-defined]

    def _chunk(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _merge(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """A streamed answer as the single object `"stream": false` returns."""
    final = dict(objects[-1])
    if "message" in final:
        final["message"] = _assistant("".join(o["message"]["content"] for o in objects))
    else:
        final["response"] = "".join(o["response"] for o in objects)
    return final


def _keep_alive_seconds(value: Any) -> float:
    """Ollama's keep_alive: seconds as a number, or a Go duration; negative means forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        parts = _DURATION.findall(text.lstrip("+-"))
        if text.lstrip("+-") != "0" and "".join(n + u for n, u in parts) != text.lstrip("+-"):
            raise ApiError(400, f'time: invalid duration "{text}"')
        seconds = sign * sum(float(n) * _UNITS[u] for n, u in parts)
    return math.inf if seconds < 0 else seconds


def _full(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _expiry(deadline: float) -> str:
    if deadline == math.inf:
        return "2318-08-02T00:00:00Z"  # what Ollama reports for "never"
    return (datetime.now(UTC) + timedelta(seconds=deadline - time.monotonic())).isoformat()


def _text(llm: Any, token: int) -> str:
    return "" if token < 0 else llm.detokenize([token], special=True).decode("utf-8", "ignore")
