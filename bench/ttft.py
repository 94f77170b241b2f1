"""Time to first model token and tokens/s: Mirador versus llama-cpp-python called directly.

Both run the same GGUF, the same chat prompt and the same sampling in one
process, query by query in alternation, so machine noise hits both alike.
Time to first token is measured to the first token the *model* produced
(Mirador's acknowledgement does not count). The model is the default `quick`
persona's, or `--gguf PATH` in its place. Cold start (a fresh process) is
measured by bench/coldstart.py.

    python bench/ttft.py [--queries N] [--tokens N] [--gguf PATH]

Prints a table and writes bench/results/ttft.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _default_model import BenchModel, prepare_home  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = next((p / "shared" / "workload" / "queries.jsonl" for p in ROOT.parents
                 if (p / "shared" / "workload" / "queries.jsonl").exists()),
                ROOT.parent / "shared" / "workload" / "queries.jsonl")  # a worktree sits deeper
RESULTS = ROOT / "bench" / "results" / "ttft.json"

def load_queries(limit: int) -> list[str]:
    lines = WORKLOAD.read_text().splitlines()
    return [json.loads(line)["query"] for line in lines if line.strip()][:limit]


def raw_run(llm, prompt_tokens: list[int], max_tokens: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Time to first token and tokens/s, calling llama-cpp-python directly."""
    started = time.perf_counter()
    first = None
    count = 0
    for chunk in llm.create_completion(prompt_tokens, max_tokens=max_tokens, stream=True,
                                       temperature=0.0, seed=1):
        if chunk["choices"][0]["text"]:
            count += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    return first - started, (count - 1) / (end - first) if count > 1 else 0.0, count


async def mirador_run(orchestrator, model_id: str, query: str,  # type: ignore[no-untyped-def]
                      max_tokens: int) -> tuple[float, float, int]:
    """Time to first model token and tokens/s through Orchestrator.process."""
    from mirador.orchestration.events import Token
    from mirador.orchestration.stages import ModelStage

    stage = ModelStage("quick_response", model_id, 0.6, timeout=600,
                       max_tokens=max_tokens, temperature=0.0)
    started = time.perf_counter()
    first = None
    count = 0
    async for event in orchestrator.process(query, stages=[stage]):
        if isinstance(event, Token):
            count += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    return first - started, (count - 1) / (end - first) if count > 1 else 0.0, count


async def warm_comparison(queries: list[str], max_tokens: int, bench: BenchModel) -> dict:
    from llama_cpp import Llama

    from mirador.backends import Message
    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.settings import load_settings

    settings = load_settings()
    async with Orchestrator(settings) as orchestrator:
        model = orchestrator.manifest.model(bench.model_id)
        backend = orchestrator.manager.backend("llamacpp")
        path = backend.model_path(model)  # type: ignore[attr-defined]
        cfg = settings.config.backends.llamacpp
        threads = cfg.n_threads or os.cpu_count() or 1
        llm = Llama(str(path), n_ctx=min(model.context_length, cfg.n_ctx), n_threads=threads,
                    n_threads_batch=threads, n_batch=cfg.n_batch, verbose=False)
        await mirador_run(orchestrator, model.id, "Warm up.", 4)
        formatter = backend._models[model.id].formatter  # type: ignore[attr-defined]
        raw_run(llm, llm.tokenize(b"Warm up.", add_bos=True), 4)
        rows = []
        for query in queries:
            prompt = formatter((Message("user", query),))
            tokens = llm.tokenize(prompt.text.encode(), add_bos=not prompt.has_bos, special=True)
            raw = raw_run(llm, tokens, max_tokens)
            mine = await mirador_run(orchestrator, model.id, query, max_tokens)
            rows.append({"query": query, "raw_ttft": raw[0], "raw_tps": raw[1],
                         "mirador_ttft": mine[0], "mirador_tps": mine[1],
                         "raw_tokens": raw[2], "mirador_tokens": mine[2]})
        llm.close()
    return summarise(rows)


def summarise(rows: list[dict]) -> dict:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    raw_ttft, my_ttft = med("raw_ttft"), med("mirador_ttft")
    raw_tps, my_tps = med("raw_tps"), med("mirador_tps")
    overhead = my_ttft - raw_ttft
    allowed = max(0.15 * raw_ttft, 0.015)
    return {"queries": len(rows), "raw_ttft_ms": raw_ttft * 1000, "mirador_ttft_ms": my_ttft * 1000,
            "ttft_overhead_ms": overhead * 1000, "ttft_ratio": my_ttft / raw_ttft,
            "ttft_allowed_overhead_ms": allowed * 1000, "ttft_target_met": overhead <= allowed,
            "raw_tokens_per_s": raw_tps, "mirador_tokens_per_s": my_tps,
            "tps_ratio": my_tps / raw_tps, "tps_target_met": my_tps >= 0.95 * raw_tps,
            "rows": rows}


def print_table(warm: dict, model: str) -> None:
    rows = [
        ("time to first token, warm (median)", f"{warm['raw_ttft_ms']:.1f} ms",
         f"{warm['mirador_ttft_ms']:.1f} ms",
         f"{warm['ttft_ratio']:.3f} ({warm['ttft_overhead_ms']:+.1f} ms)"),
        ("tokens/s (median)", f"{warm['raw_tokens_per_s']:.1f}",
         f"{warm['mirador_tokens_per_s']:.1f}", f"{warm['tps_ratio']:.3f}"),
    ]
    print(f"{model}\n\n| measure | raw llama-cpp-python | Mirador | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n{warm['queries']} workload queries; first-token target "
          f"(overhead <= {warm['ttft_allowed_overhead_ms']:.1f} ms): "
          f"{'met' if warm['ttft_target_met'] else 'NOT met'}; tokens/s target (>= 0.95): "
          f"{'met' if warm['tps_target_met'] else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=38)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--gguf", type=Path, help="a GGUF to run in place of the default model")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mirador-bench-"))
    os.environ["MIRADOR_HOME"] = str(home)
    bench = prepare_home(home, args.gguf)
    warm = asyncio.run(warm_comparison(load_queries(args.queries), args.tokens, bench))
    print_table(warm, bench.path.name)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"warm": warm, "model": bench.path.name,
                                   "cpu_count": os.cpu_count(), "max_tokens": args.tokens},
                                  indent=2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
