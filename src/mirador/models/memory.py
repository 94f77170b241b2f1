"""Memory: how much models may take, what one will need, and what it really took.

Before a load, a GGUF's needs are estimated from its header: the tensor data
(what llama.cpp allocates for the weights, byte for byte), the KV cache for
the context it gets (f16 keys and values for every layer), and an allowance
for logits and compute buffers. After the load, the process's resident memory
is measured again; the difference is what the model really took. Measurements
are kept under the home (`models/memory.json`), so a model measured once is
reserved at its measured size from then on, and models never measured are
scaled by how far off estimates have been so far.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mirador.backends.base import Backend
from mirador.models.gguf_info import GGUFInfo
from mirador.models.manifest import ModelEntry
from mirador.settings import ModelsConfig

MiB = 1 << 20
KV_BYTES = 2  # llama.cpp keeps keys and values as f16 by default
VOCAB_BYTES = 96  # per token: its text, score and lookup entries in llama.cpp's vocabulary
# A learned correction only ever raises an estimate for a model never measured, so the
# budget errs on the safe side; a model measured once is reserved at its measured size.
RATIO_BOUNDS = (1.0, 2.0)
UNRELIABLE_BELOW = 0.5  # a measurement under half the estimate was disturbed: ignore it


@runtime_checkable
class EstimatesMemory(Protocol):
    """A backend that can say, before loading, how many bytes a model will take."""

    def estimate_bytes(self, model: ModelEntry) -> int: ...


# -- the machine -------------------------------------------------------------------


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def available_bytes() -> int:
    """RAM the system could give without swapping (MemAvailable), else free RAM."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def release_freed_memory() -> None:
    """Hand freed heap back to the system (glibc), so resident memory drops after an unload."""
    import ctypes.util  # slow to import (0.1 s); only unloads need it

    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


class ResidentPeak:
    """The highest resident memory seen while a block runs (sampled in a thread).

        with ResidentPeak() as peak:
            ...
        print(peak.peak - peak.start)
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start = self.peak = resident_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ResidentPeak:
        self.start = self.peak = resident_bytes() or 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def _take(self) -> None:
        self.peak = max(self.peak, resident_bytes() or 0)


def resolve_budget(config: ModelsConfig, available: int | None = None) -> int:
    """The budget in bytes: the configured one, else a fraction of the RAM available now."""
    if config.budget is not None:
        return int(config.budget)
    return int((available if available is not None else available_bytes())
               * config.budget_fraction)


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


# -- estimates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """What a model is expected to take once loaded, in bytes."""

    weights: int
    kv_cache: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def estimate_gguf(info: GGUFInfo, n_ctx: int, n_batch: int) -> Estimate:
    """Weights + KV cache for `n_ctx` tokens + the vocabulary's tables, logits and the
    compute buffers a batch of `n_batch` touches."""
    n_vocab = info.array_lengths.get("tokenizer.ggml.tokens", 32000)
    n_embd = int(info.arch("embedding_length", 4096))
    overhead = n_vocab * (4 + VOCAB_BYTES) + n_batch * n_embd * 4 * 16 + 4 * MiB
    return Estimate(weights=info.tensor_bytes, kv_cache=kv_cache_bytes(info, n_ctx),
                    overhead=overhead)


def kv_cache_bytes(info: GGUFInfo, n_ctx: int) -> int:
    """f16 keys and values for every layer (llama.cpp sizes sliding-window layers fully too)."""
    layers = int(info.arch("block_count", 0))
    n_embd = int(info.arch("embedding_length", 0))
    heads = max(int(info.arch("attention.head_count", 1) or 1), 1)
    heads_kv = int(info.arch("attention.head_count_kv", heads) or heads)
    key = int(info.arch("attention.key_length", n_embd // heads))
    value = int(info.arch("attention.value_length", n_embd // heads))
    return n_ctx * layers * heads_kv * (key + value) * KV_BYTES


# -- what loads really took -----------------------------------------------------------


class MemoryProfile:
    """Measured sizes by model, and the learned ratio of measured to estimated."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._models: dict[str, dict[str, Any]] = {}
        self.ratio = 1.0
        self._read()

    def corrected(self, model_id: str, raw: int) -> int:
        """The bytes to reserve for a model estimated at `raw`."""
        known = self._models.get(model_id)
        if known and _close(known.get("estimate", 0), raw):
            return int(known["measured"])
        return int(raw * self.ratio)

    def record(self, model_id: str, raw: int, measured: int | None) -> int:
        """Keep a load's measurement; returns the bytes to reserve for the loaded model
        (what it grew to while answering before, if that was more)."""
        if not measured or (raw > 0 and measured < raw * UNRELIABLE_BELOW):
            return self.corrected(model_id, raw)
        if raw > 0:
            low, high = RATIO_BOUNDS
            self.ratio = min(max(0.7 * self.ratio + 0.3 * measured / raw, low), high)
        known = self._models.get(model_id)
        if known and _close(known.get("estimate", 0), raw):  # halfway back to this load's
            measured = max(measured, (measured + int(known["measured"])) // 2)
        self.remember(model_id, raw, measured)
        return measured

    def remember(self, model_id: str, raw: int, total: int) -> None:
        """Keep what a model takes in all (its load plus what answering added)."""
        self._models[model_id] = {"estimate": raw, "measured": total, "at": time.time()}
        self._write()

    def measured(self, model_id: str) -> int | None:
        known = self._models.get(model_id)
        return int(known["measured"]) if known else None

    def _read(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._models = dict(data.get("models", {}))
            self.ratio = float(data.get("ratio", 1.0))
        except (OSError, ValueError, TypeError, AttributeError):
            self._models, self.ratio = {}, 1.0  # a damaged profile only costs estimates

    def _write(self) -> None:
        if self.path is None:
            return
        data = {"ratio": round(self.ratio, 4), "models": self._models}
        with contextlib.suppress(OSError):  # measurements are a cache: never fail a load
            write_json_atomic(self.path, data)


def _close(a: float, b: float, tolerance: float = 0.1) -> bool:
    return abs(a - b) <= tolerance * max(a, b, 1)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)


async def measure_load(model: ModelEntry, backend: Backend,
                       load: Callable[[], Awaitable[None]]) -> int | None:
    """Run `load` and say what it took: the RSS growth for an in-process backend, else
    what the server reports for the model afterwards (None when it reports nothing)."""
    if getattr(backend, "in_process", False):
        before = resident_bytes()
        await load()
        after = resident_bytes()
        return None if before is None or after is None else max(after - before, 0)
    await load()
    for loaded in await backend.loaded():
        if loaded.model_id in server_names(model):
            return loaded.size_bytes
    return None


def server_names(model: ModelEntry) -> set[str]:
    """The names a server may list `model` under ('llama3.2' is 'llama3.2:latest' too)."""
    names = {model.id}
    if model.name:
        names.add(model.name)
        if ":" not in model.name:
            names.add(f"{model.name}:latest")
    return names
