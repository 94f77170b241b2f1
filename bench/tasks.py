"""Open WebUI's background tasks: Mirador's one-stage task path versus a full staged answer.

A warm `mirador serve` (default SmolLM2 model and stages, learning and memory on, in
a throw-away home) is sent Open WebUI's title, tags and follow-up requests, replayed
from its default templates (the bodies tests/server/test_tasks.py sends):

    task     POST /api/chat on mirador:auto: recognised as a task, one stage
    staged   the same prompt through POST /mirador/ask (routing as for any
             question): what every task cost before tasks were recognised

The two alternate within each run, so machine noise hits both alike. Prints a table
(median seconds per request, and the ratio), one reply per task, and writes
bench/results/tasks.json.

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

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.server.test_tasks import TASKS, ollama_body  # noqa: E402

from _server import free_port, serving  # noqa: E402
from server_ttft import make_home  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tasks.json"


def task_path(url: str, task: str) -> tuple[float, str]:
    started = time.perf_counter()
    reply = httpx.post(f"{url}/api/chat", json=ollama_body("mirador:auto", task), timeout=900)
    reply.raise_for_status()
    return time.perf_counter() - started, reply.json()["message"]["content"]


def staged_path(url: str, task: str) -> tuple[float, str]:
    prompt = ollama_body("mirador:auto", task)["messages"][0]["content"]
    started = time.perf_counter()
    reply = httpx.post(f"{url}/mirador/ask", json={"query": prompt, "stream": False},
                       timeout=900)
    reply.raise_for_status()
    return time.perf_counter() - started, reply.json()["answer"]


def measure(url: str, runs: int) -> dict[str, dict[str, list]]:
    seen: dict[str, dict[str, list]] = {t: {"task": [], "staged": [], "replies": []}
                                        for t in TASKS}
    for run in range(runs):
        for task in TASKS:
            order = [("task", task_path), ("staged", staged_path)]
            for name, probe in order if run % 2 == 0 else order[::-1]:
                seconds, text = probe(url, task)
                seen[task][name].append(seconds)
                if name == "task":
                    seen[task]["replies"].append(text)
    return seen


def report(seen: dict[str, dict[str, list]], runs: int) -> None:
    rows = []
    print(f"{'task':<22}{'one stage (s)':>15}{'staged (s)':>12}{'ratio':>8}")
    for task, got in seen.items():
        one, staged = statistics.median(got["task"]), statistics.median(got["staged"])
        rows.append({"task": task, "one_stage_s": round(one, 2), "staged_s": round(staged, 2),
                     "ratio": round(staged / one, 1), "task_runs": got["task"],
                     "staged_runs": got["staged"], "example_reply": got["replies"][0],
                     "replies": got["replies"]})
        print(f"{task:<22}{one:>15.2f}{staged:>12.2f}{staged / one:>7.1f}x")
    print("\nReplies (every run):")
    for task, got in seen.items():
        for text in got["replies"]:
            print(f"  {task}: {text}")
    RESULTS.write_text(json.dumps({"benchmark": "tasks", "runs": runs, "cores": os.cpu_count(),
                                   "model": "SmolLM2-135M-Instruct", "rows": rows}, indent=2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as root:
        home = make_home(Path(root), port)
        with serving(home, port) as url:
            task_path(url, "title_generation")  # warm-up: the first request loads MiniLM too
            report(measure(url, args.runs), args.runs)


if __name__ == "__main__":
    main()
