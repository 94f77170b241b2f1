"""The sandbox's start-up cost: one `run_python` call, against a bare `python -I` process.

Each round runs, in a shuffled order so machine noise hits all alike, the same
tiny program (`print(1)`) in these ways:

  bare         `python -I -` on Mirador's interpreter through asyncio's subprocess (baseline);
  bubblewrap   `run_code` with the default isolation (bwrap, prlimit, setpriv) on that
               interpreter;
  bare-system  `python -I -` on Debian's /usr/bin/python3 (baseline for the next);
  namespaces   `run_code` with isolation: namespaces (unshare, prlimit, setpriv) and
               python: /usr/bin/python3 (its uid must reach the interpreter on the host).

Each is timed from the call to the process's exit with its output read. Prints
p50/p95 per way and each sandbox's p50 as a ratio to its bare baseline in the
same run, shows one run's output, and writes bench/results/tools_sandbox.json.

    python bench/tools_sandbox.py [--runs N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tools_sandbox.json"
CODE = "print(1)\n"
PYTHON = os.path.realpath(sys.executable)  # the interpreter the sandbox runs, too
SYSTEM_PYTHON = "/usr/bin/python3"


def bare(python: str) -> Callable[[], Awaitable[str]]:
    async def run() -> str:
        process = await asyncio.create_subprocess_exec(
            python, "-I", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={})
        out, _ = await process.communicate(CODE.encode())
        return out.decode()

    return run


def sandboxed(isolation: str, python: str | None = None) -> Callable[[], Awaitable[str]]:
    from mirador.settings import SandboxConfig
    from mirador.tools.sandbox import run_code

    config = SandboxConfig(isolation=isolation, python=python)  # type: ignore[arg-type]

    async def run() -> str:
        result = await run_code(CODE, config)
        assert result.ok, result
        return result.stdout

    return run


BASELINE = {"bubblewrap": "bare", "namespaces": "bare-system"}


def the_ways() -> dict[str, Callable[[], Awaitable[str]]]:
    ways: dict[str, Callable[[], Awaitable[str]]] = {"bare": bare(PYTHON)}
    if shutil.which("bwrap"):
        ways["bubblewrap"] = sandboxed("bubblewrap")
    if Path(SYSTEM_PYTHON).exists():
        ways["bare-system"] = bare(SYSTEM_PYTHON)
        ways["namespaces"] = sandboxed("namespaces", SYSTEM_PYTHON)
    return ways


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(runs: int, seed: int) -> dict[str, list[float]]:
    ways = the_ways()
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for name in ways:  # one warm-up each: the first exec of a binary pays the page cache
        assert (await ways[name]()).strip() == "1"
    for _ in range(runs):
        order = list(ways)
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            out = await ways[name]()
            times[name].append(time.perf_counter() - started)
            assert out.strip() == "1", (name, out)
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    def p50(name: str) -> float:
        return statistics.median(times[name])

    return {name: {"p50_ms": 1000 * p50(name),
                   "p95_ms": 1000 * percentile(values, 0.95),
                   "ratio_to_baseline_p50": p50(name) / p50(BASELINE.get(name, name))}
            for name, values in times.items()}


def show_example() -> None:
    from mirador.settings import SandboxConfig
    from mirador.tools.sandbox import describe, run_code

    config = SandboxConfig()
    run = asyncio.run(run_code("import os\nprint(os.getuid(), sorted(os.listdir('/')))\n"
                               "open('/etc/passwd')\n", config))
    print("\nexample (bubblewrap):\n" + describe(run, config))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    times = asyncio.run(measure(args.runs, args.seed))
    summary = summarise(times)
    print(f"{'way':<13}{'p50 ms':>9}{'p95 ms':>9}{'x baseline':>12}")
    for name, row in summary.items():
        print(f"{name:<13}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
              f"{row['ratio_to_baseline_p50']:>12.2f}")
    if shutil.which("bwrap"):
        show_example()
    RESULTS.write_text(json.dumps({"runs": args.runs, "seed": args.seed, "code": CODE,
                                   "cpus": os.cpu_count(), "kernel": platform.release(),
                                   "load_average": os.getloadavg(), "summary": summary,
                                   "seconds": times}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
