"""Recall benchmark: quality on the held-out half of the recall set, beside plain vector search,
and latency at 10,000 (and optionally 100,000) memories.

    python bench/recall.py [--set PATH] [--sizes 10000[,100000]] [--tune] [--cold-runs N]

The set (bench/data/recall_set.json, written by bench/data/make_recall_set.py) is split
once by family into a tuning half and a held-out half. Every memory is imported through
the real store (ChromaDB + the lexical index, in a temporary home); each probe searches
its own namespace, scored as of the set's 'now'.

- recall@5: every relevant memory is in the top five; recall@1: the first is relevant;
- supersession: on update probes, the newer memory ranks above the one it corrects;
- nothing injected: on probes with nothing relevant stored (or stored only in another
  namespace), the context compiler's gate lets no memory through; 'injected' is how
  often the gate lets the right memory through on the other probes;
- baseline: plain ChromaDB + all-MiniLM-L6-v2 cosine over each whole exchange, filtered
  by namespace, in the same run; its injection gate is a cosine threshold calibrated on
  the tuning half by the same rule as Mirador's.

`--tune` searches the ranking constants on the tuning half and picks the point whose
objective (recall@1 + recall@5 + supersession), averaged with its grid neighbours', is
best; prints it, checks it on the held-out half and shows what each constant adds there
(an ablation); every --tune run therefore looks at the held-out half once. Mirador's top k
is plain vector search's top k reordered (see mirador.memory.ranking), so its recall@k
equals the baseline's up to Chroma's approximate search. Latency:
a namespace filled with the set's texts (numbered, so each is distinct) and random unit
vectors, then the probes embedded and recalled end to end; p50/p95 in ms, and plain
Chroma's query in the same run. Prints tables and writes bench/results/recall.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "bench" / "data" / "recall_set.json"
RESULTS = ROOT / "bench" / "results" / "recall.json"
NOTHING = ("none", "isolation-none")
GRID = {"match_query_weight": [0.0, 0.2, 0.4], "lexical_weight": [0.0, 0.03, 0.06],
        "supersede_from": [0.3, 0.4, 0.5], "supersede_margin": [0.1, 0.15, 0.2],
        "age_weight": [0.0, 0.02, 0.04], "told_weight": [0.1, 0.15, 0.2],
        "update_depth": [2, 3, 5]}
NEUTRAL = {"match_query_weight": 0.0, "lexical_weight": 0.0, "age_weight": 0.0,
           "told_weight": 0.0, "update_depth": 0,
           "supersede_from": 2.0}  # 2.0: no two memories are that close, nothing supersedes
MIN_NOTHING = 0.9  # the gate is the lowest threshold keeping this share of nothing-probes clean


def _settings(home: Path) -> Any:
    from mirador.settings import load_settings

    return load_settings(home=home, env={})


def load_set(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    families = {name: half for half, names in data["split"].items() for name in names}
    for probe in data["probes"]:
        probe["half"] = families[probe["family"]]
    return data


def half(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for p in data["probes"] if p["half"] == name]


_EMBEDDERS: dict[str, Any] = {}


def embedder(model: str | None = None) -> Any:
    """MiniLM as Mirador runs it by default, or (`--embedder-model`) a sentence-transformers
    model folder, as `memory.embedder: sentence-transformers` runs it; loaded once."""
    if (model or "") not in _EMBEDDERS:
        from mirador.embeddings.minilm import MiniLMEmbedder
        from mirador.embeddings.st import SentenceTransformerEmbedder

        _EMBEDDERS[model or ""] = (SentenceTransformerEmbedder.load(model) if model
                                   else MiniLMEmbedder.load())
    return _EMBEDDERS[model or ""]


def vectors(data: dict[str, Any], model: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every memory's query and whole-exchange vectors, computed once and cached in the temp
    directory (keyed by the texts and model), since embedding 4,800 texts takes minutes on
    2 cores."""
    import hashlib

    memories = records(data)
    texts = [r.query for r in memories] + [r.document for r in memories]
    named = [*texts, model] if model else texts  # MiniLM's cache keeps the name it had
    key = hashlib.sha256("\0".join(named).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"mirador-recall-{key}.npy"
    if cache.exists():
        both = np.load(cache)
    else:
        both = embedder(model).embed(texts)
        np.save(cache, both)
    return both[: len(memories)], both[len(memories):]


def records(data: dict[str, Any]) -> list[Any]:
    from mirador.memory.records import MemoryRecord, parse_time

    return [MemoryRecord(id=m["id"], namespace=m["namespace"], query=m["query"],
                         response=m["response"], timestamp=parse_time(m["timestamp"]))
            for m in data["memories"]]


# -- quality -----------------------------------------------------------------------------

def score(ranked: dict[str, list[str]], passed: dict[str, list[str]],
          probes: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures for `probes`, from each probe's ranked ids and the ids the gate passed."""
    positive = [p for p in probes if p["relevant"]]
    nothing = [p for p in probes if p["kind"] in NOTHING]
    updates = [p for p in probes if p["kind"] == "update"]
    at1 = [ranked[p["id"]][:1] and ranked[p["id"]][0] in p["relevant"] for p in positive]
    at5 = [set(p["relevant"]) <= set(ranked[p["id"]][:5]) for p in positive]
    sup = [_newer_first(ranked[p["id"]], p["newer"], p["older"]) for p in updates]
    clean = [not passed[p["id"]] for p in nothing]
    injected = [p["relevant"][0] in passed[p["id"]] for p in positive]
    return {"probes": len(probes), "recall@1": _share(at1), "recall@5": _share(at5),
            "supersession": _share(sup), "supersession_cases": len(sup),
            "nothing_injected": _share(clean), "nothing_probes": len(clean),
            "injected": _share(injected),
            "missed_at_1": [p["query"] for p, ok in zip(positive, at1, strict=True) if not ok]}


def _share(flags: list[Any]) -> float:
    return round(sum(bool(f) for f in flags) / len(flags), 4) if flags else 0.0


def _newer_first(ranked: list[str], newer: str, older: str) -> bool:
    if newer not in ranked:
        return False
    return older not in ranked or ranked.index(newer) < ranked.index(older)


def objective(figures: dict[str, Any]) -> float:
    return float(figures["recall@1"] + figures["recall@5"] + figures["supersession"])


class Mirador:
    """The real store over the whole set, with each probe's candidates gathered once."""

    def __init__(self, data: dict[str, Any], home: Path, model: str | None = None) -> None:
        from mirador.memory.ranking import RankingParams
        from mirador.memory.records import parse_time
        from mirador.memory.store import open_store

        self.now = parse_time(data["now"])
        self.store = open_store(_settings(home), embedder(model), RankingParams())
        queries, docs = vectors(data, model)
        started = time.perf_counter()
        memories = records(data)
        for namespace in sorted({r.namespace for r in memories}):
            rows = [i for i, r in enumerate(memories) if r.namespace == namespace]
            self.store.add_vectors(namespace, [memories[i] for i in rows], queries[rows],
                                   docs[rows])
        self.import_seconds = time.perf_counter() - started
        self.candidates = {p["id"]: self.store.candidates(p["query"], p["namespace"])
                           for p in data["probes"]}

    def run(self, probes: list[dict[str, Any]], params: Any) -> dict[str, Any]:
        from mirador.memory.ranking import rank, relevant

        hits = {p["id"]: rank(self.candidates[p["id"]], self.now, params) for p in probes}
        ranked = {k: [h.record.id for h in v] for k, v in hits.items()}
        passed = {k: [h.record.id for h in relevant(v, params)] for k, v in hits.items()}
        return score(ranked, passed, probes)

    def similarities(self, probes: list[dict[str, Any]], params: Any) -> dict[str, Any]:
        from mirador.memory.ranking import rank

        return {p["id"]: [(h.record.id, h.similarity)
                          for h in rank(self.candidates[p["id"]], self.now, params)]
                for p in probes}


class Baseline:
    """Plain ChromaDB + MiniLM cosine over each whole exchange, filtered by namespace."""

    def __init__(self, data: dict[str, Any], home: Path) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        minilm = embedder()
        client = chromadb.PersistentClient(path=str(home),
                                           settings=ChromaSettings(anonymized_telemetry=False))
        self.col = client.create_collection("baseline", embedding_function=None,
                                            configuration={"hnsw": {"space": "cosine"}})
        memories = data["memories"]
        _, docs = vectors(data)  # each whole exchange: query, newline, response
        for start in range(0, len(memories), 1000):
            self.col.add(ids=[m["id"] for m in memories[start:start + 1000]],
                         embeddings=docs[start:start + 1000],
                         metadatas=[{"namespace": m["namespace"]}
                                    for m in memories[start:start + 1000]])
        self.found = {}
        for p in data["probes"]:
            got = self.col.query(query_embeddings=minilm.embed([p["query"]]), n_results=5,
                                 where={"namespace": p["namespace"]})
            self.found[p["id"]] = [(i, 1.0 - d) for i, d in
                                   zip(got["ids"][0], got["distances"][0], strict=True)]

    def run(self, probes: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
        ranked = {p["id"]: [i for i, _ in self.found[p["id"]]] for p in probes}
        passed = {p["id"]: [i for i, s in self.found[p["id"]] if s >= threshold]
                  for p in probes}
        return score(ranked, passed, probes)


def calibrate(found: dict[str, list[tuple[str, float]]], probes: list[dict[str, Any]]) -> float:
    """The lowest similarity threshold at which at least MIN_NOTHING of the nothing-relevant
    probes inject nothing (the highest similarity among each one's hits sets it)."""
    tops = sorted(max((s for _, s in found[p["id"]]), default=0.0)
                  for p in probes if p["kind"] in NOTHING)
    allowed = int(len(tops) * (1.0 - MIN_NOTHING))  # how many may inject something
    return round(float(tops[len(tops) - 1 - allowed]) + 0.005, 3)


def tune(mirador: Mirador, data: dict[str, Any]) -> dict[str, Any]:
    """Grid search on the tuning half, choosing the point whose objective, averaged with its
    grid neighbours', is best (a broad good region, not a lucky point); the gate calibrated
    after; held-out and an ablation."""
    from mirador.memory.ranking import RankingParams

    tuning = half(data, "tuning")
    points = list(itertools.product(*(range(len(v)) for v in GRID.values())))
    got = {point: objective(mirador.run(tuning, _params(point))) for point in points}
    best_point = max(points, key=lambda point: _smoothed(got, point))
    best = _params(best_point)
    best = replace(best, inject_similarity=calibrate(mirador.similarities(tuning, best), tuning))
    held = half(data, "held_out")
    ablation = {name: {"tuning": mirador.run(tuning, replace(best, **{name: value})),
                       "held_out": mirador.run(held, replace(best, **{name: value}))}
                for name, value in NEUTRAL.items()}
    assert isinstance(best, RankingParams)
    return {"chosen": {k: getattr(best, k) for k in [*GRID, "inject_similarity"]},
            "tuning": mirador.run(tuning, best), "held_out": mirador.run(held, best),
            "without": {k: {h: _brief(v[h]) for h in v} for k, v in ablation.items()}}


def _params(point: tuple[int, ...]) -> Any:
    from mirador.memory.ranking import RankingParams

    values = {name: GRID[name][i] for name, i in zip(GRID, point, strict=True)}
    return replace(RankingParams(), **values)


def _smoothed(got: dict[tuple[int, ...], float], point: tuple[int, ...]) -> float:
    """The point's objective averaged with the mean of its neighbours' (one step in one
    constant), so a choice that only one lucky combination supports loses."""
    near = [got[n] for axis in range(len(point)) for step in (-1, 1)
            if (n := point[:axis] + (point[axis] + step,) + point[axis + 1:]) in got]
    return (got[point] + (sum(near) / len(near) if near else got[point])) / 2.0


def _brief(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: figures[k] for k in ("recall@1", "recall@5", "supersession", "nothing_injected")}


def quality(data: dict[str, Any], tuning: bool, model: str | None = None) -> dict[str, Any]:
    from mirador.memory.ranking import RankingParams

    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as base_home:
        print("embedding and importing the set...", file=sys.stderr, flush=True)
        mirador = Mirador(data, Path(home), model)
        result: dict[str, Any] = {"import_seconds": round(mirador.import_seconds, 1)}
        if tuning:
            print("tuning...", file=sys.stderr, flush=True)
            result["tune"] = tune(mirador, data)
        params = RankingParams()
        if model:  # the gate's threshold is the model's own, set by the same rule
            tuning_half = half(data, "tuning")
            params = replace(params, inject_similarity=calibrate(
                mirador.similarities(tuning_half, params), tuning_half))
        baseline = Baseline(data, Path(base_home))
        threshold = calibrate(baseline.found, half(data, "tuning"))
        for name in ("held_out", "tuning"):
            probes = half(data, name)
            result[name] = {"mirador": mirador.run(probes, params),
                            "baseline": baseline.run(probes, threshold)}
        result["params"] = asdict(params)
        result["baseline_threshold"] = threshold
        result["examples"] = _examples(mirador, data, params)
        mirador.store.close()
        return result


def _examples(mirador: Mirador, data: dict[str, Any], params: Any) -> list[dict[str, Any]]:
    """A few held-out probes with what came first, to read beside the table."""
    from mirador.memory.ranking import rank

    text = {m["id"]: m["query"] for m in data["memories"]}
    picked = [p for p in half(data, "held_out") if p["namespace"] == "ana"][::4]
    out = []
    for probe in picked:
        hits = rank(mirador.candidates[probe["id"]], mirador.now, params)[:2]
        out.append({"kind": probe["kind"], "query": probe["query"],
                    "expected": [text[i] for i in probe["relevant"]],
                    "got": [f"{h.score:.3f} sim {h.similarity:.2f}  {h.record.query}"
                            for h in hits]})
    return out


# -- latency -----------------------------------------------------------------------------

def latency(size: int, data: dict[str, Any], repeats: int,
            model: str | None = None) -> dict[str, Any]:
    """Fill one namespace with `size` memories (the set's texts, numbered; random unit
    vectors), then time real recalls, and plain Chroma's query on the same collection."""
    from mirador.memory.ranking import RankingParams
    from mirador.memory.records import MemoryRecord
    from mirador.memory.store import open_store

    rng = np.random.default_rng(size)
    now = time.time()
    texts = [(m["query"], m["response"]) for m in data["memories"]]
    queries = [p["query"] for p in data["probes"]]
    model_in_use = embedder(model)
    width = model_in_use.dimension
    with tempfile.TemporaryDirectory() as home:
        store = open_store(_settings(Path(home)), model_in_use, RankingParams())
        store.check_embedder = False  # random unit vectors, not MiniLM's
        started = time.perf_counter()
        for start in range(0, size, 5000):
            count = min(5000, size - start)
            batch = [MemoryRecord(id=f"s{start + i}",
                                  query=f"{texts[(start + i) % len(texts)][0]} (#{start + i})",
                                  response=texts[(start + i) % len(texts)][1], namespace="default",
                                  timestamp=now - float(rng.uniform(0, 3e7)))
                     for i in range(count)]
            store.add_vectors("default", batch, _unit(rng, count, width),
                              _unit(rng, count, width))
        fill = time.perf_counter() - started
        store.recall(queries[0], now, "default")  # the first query loads the index
        mine, plain = _timed(store, queries, now, repeats)
        store.close()
    return {"memories": size, "fill_seconds": round(fill, 1), "queries": len(mine),
            "p50_ms": _ms(mine, 50), "p95_ms": _ms(mine, 95),
            "plain_p50_ms": _ms(plain, 50), "plain_p95_ms": _ms(plain, 95)}


def _timed(store: Any, queries: list[str], now: float, repeats: int
           ) -> tuple[list[float], list[float]]:
    mem = store._collection("default", "mem", create=False)
    mine, plain = [], []
    for _ in range(repeats):
        for text in queries:
            begun = time.perf_counter()
            store.recall(text, now, "default")
            mine.append(time.perf_counter() - begun)
            begun = time.perf_counter()
            mem.query(query_embeddings=store.embedder.embed([text]), n_results=5)
            plain.append(time.perf_counter() - begun)
    return mine, plain


def _ms(times: list[float], q: int) -> float:
    return round(float(np.percentile(times, q)) * 1000, 2)


def _unit(rng: np.random.Generator, count: int, width: int) -> np.ndarray:
    vectors = rng.standard_normal((count, width)).astype(np.float32)
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


# -- report ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET)
    parser.add_argument("--sizes", default="10000",
                        help="Comma-separated store sizes to time (add 100000: ~5 minutes).")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tune", action="store_true", help="Search the constants on the "
                        "tuning half, check them on the held-out half.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--embedder-model", help="Rank with this sentence-transformers model "
                        "folder instead of MiniLM (the baseline stays plain Chroma + MiniLM).")
    args = parser.parse_args(argv)
    data = load_set(args.set)
    result: dict[str, Any] = {
        "set": str(args.set.relative_to(ROOT) if args.set.is_relative_to(ROOT) else args.set),
        "memories": len(data["memories"]), "probes": len(data["probes"]),
        "embedder": args.embedder_model or "all-MiniLM-L6-v2 (packaged)",
        "quality": quality(data, args.tune, args.embedder_model),
        "latency": [latency(int(s), data, args.repeats, args.embedder_model)
                    for s in args.sizes.split(",") if s],
        "startup": startup()}
    print_report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


def print_report(result: dict[str, Any]) -> None:
    quality = result["quality"]
    print(f"Recall set: {result['memories']} memories, {result['probes']} probes "
          f"(import {quality['import_seconds']} s); Mirador embeds with {result['embedder']}")
    header = ("recall@1", "recall@5", "supersession", "nothing_injected", "injected")
    print(f"{'':38}" + "".join(f"{h:>17}" for h in header))
    for name in ("held_out", "tuning"):
        for who in ("mirador", "baseline"):
            row = quality[name][who]
            label = f"{name} {'Mirador' if who == 'mirador' else 'plain Chroma + MiniLM'}"
            print(f"{label:38}" + "".join(f"{row[h]:>17.3f}" for h in header))
    if "tune" in quality:
        tuned = quality["tune"]
        print(f"\nTuned on the tuning half: {tuned['chosen']}")
        for name in ("tuning", "held_out"):
            print(f"  tuned, {name:9} {_brief(tuned[name])}")
        for name, figures in tuned["without"].items():
            print(f"  without {name:18} held-out {figures['held_out']}")
    print("\nHeld-out examples:")
    for example in quality["examples"]:
        print(f"  [{example['kind']}] {example['query']}\n    expected: {example['expected']}")
        for got in example["got"]:
            print(f"    got {got}")
    print("\nRecall latency (embed the query + both indexes + rank), ms")
    print(f"{'memories':>10}{'p50':>8}{'p95':>8}{'plain p50':>11}{'fill s':>9}")
    for row in result["latency"]:
        print(f"{row['memories']:>10}{row['p50_ms']:>8}{row['p95_ms']:>8}"
              f"{row['plain_p50_ms']:>11}{row['fill_seconds']:>9}")
    start = result["startup"]
    print(f"\nStart-up: MiniLM ready in {start['minilm_ready_s']} s; "
          f"chromadb import {start['chromadb_import_s']} s (in the background)")


if __name__ == "__main__":
    sys.exit(main())
