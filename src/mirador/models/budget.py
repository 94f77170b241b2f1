"""The memory budget: how much models may take, and what one really took.

Before a load, a GGUF's needs are estimated from its header (`mirador.catalog.sizes`).
After the load, the process's resident memory
is measured again; the difference is what the model really took. Measurements
are kept under the home (`models/memory.json`), so a model measured once is
reserved at its measured size from then on, and models never measured are
scaled by how far off estimates have been so far.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mirador.atomic import write_json_atomic
from mirador.backends.base import Backend
from mirador.catalog.manifest import ModelEntry
from mirador.host import available_bytes, resident_bytes
from mirador.settings import ModelsConfig

# A learned correction only ever raises an estimate for a model never measured, so the
# budget errs on the safe side; a model measured once is reserved at its measured size.
RATIO_BOUNDS = (1.0, 2.0)
UNRELIABLE_BELOW = 0.5  # a measurement under half the estimate was disturbed: ignore it


def resolve_budget(config: ModelsConfig, available: int | None = None) -> int:
    """The budget in bytes: the configured one, else a fraction of the RAM available now."""
    if config.budget is not None:
        return int(config.budget)
    return int((available if available is not None else available_bytes())
               * config.budget_fraction)


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


async def measure_load(model: ModelEntry, backend: Backend,
                       load: Callable[[], Awaitable[None]]) -> int | None:
    """Run `load` and say what it took: the RSS growth for an in-process backend, else
    what the server reports for the model afterwards (None when it reports nothing)."""
    if backend.capabilities.in_process:
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
