"""Cold start: `mirador ask` from process start to its first model token, against bare llama.cpp.

Each run starts two fresh processes, in alternating order so machine noise hits
both alike:

  (a) a bare Python script that imports llama_cpp, loads the same GGUF with the
      same n_ctx / threads / n_batch as Mirador and prints the first token of a
      chat completion of the same chat Mirador's first stage sends (the quick
      persona's system prompt and examples, then the question);
  (b) `mirador ask --json QUESTION` with a fresh MIRADOR_HOME and the default
      path a new user gets: routing, the learner (its query-type classifier and
      chain chooser) and memory all ON, and the packaged model's one SHA-256
      check on its first use;
  (c) the same in a home that answered one (untimed) question before, as on every
      day after the first: its memory and learning hold that answer, and it has
      the warm-start hint (`mirador.warmstart`).

Both are timed from spawning the process to the line with the first token.

    python bench/coldstart.py [--runs N] [--gguf PATH] [--python PATH]

`--gguf` puts that file in place of the default model (in the fresh homes'
manifest). `--python` runs both sides with another interpreter (another venv's
`bin/python`, where Mirador is installed as a user installs it: `pip install .`, which
compiles its bytecode); by default, this one. An editable install (`pip install -e .`)
where PYTHONDONTWRITEBYTECODE is set (as in this project's sandbox) compiles every
Mirador module from source at each start: about 0.1 s more, which the table says. The
fresh homes' stages keep their defaults except for long timeouts, so that a busy
machine slows a run down rather than aborting it.
Prints a table and writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _default_model import BenchModel, prepare_home  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "coldstart.json"
QUESTION = "What should I focus on today?"
TARGET = 1.5

BARE = """
import json, sys
from llama_cpp import Llama
cfg = json.loads(sys.argv[1])
llm = Llama(cfg["path"], n_ctx=cfg["n_ctx"], n_threads=cfg["threads"],
            n_threads_batch=cfg["threads"], n_batch=cfg["n_batch"], verbose=False)
messages = cfg["prefix"] + [{"role": "user", "content": cfg["question"]}]
for chunk in llm.create_chat_completion(messages, max_tokens=8, stream=True):
    text = chunk["choices"][0]["delta"].get("content")
    if text:
        print("TOKEN", json.dumps(text), flush=True)
        break
"""


def timed_lines(cmd: list[str], env: dict[str, str], marks: dict[str, str]) -> dict[str, float]:
    """Seconds from spawning `cmd` to the first stdout line holding each mark's text."""
    started = time.perf_counter()
    seen: dict[str, float] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            for name, text in marks.items():
                if name not in seen and text in line:
                    seen[name] = time.perf_counter() - started
            if "token" in seen:
                proc.kill()
                break
        proc.wait()
        if "token" not in seen:
            raise RuntimeError(f"{cmd[:4]} printed no token: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    return seen


PYTHON = sys.executable  # both sides' interpreter (`--python`)

INSTALL = """
import importlib.util, json, mirador
from mirador.warmstart import DEFAULT_PACKAGE, first_gguf, package_folder
source = mirador.__file__
print(json.dumps({"source": source, "bytecode": importlib.util.cache_from_source(source),
                  "gguf": str(first_gguf(package_folder(DEFAULT_PACKAGE)))}))
"""


def installed() -> dict[str, str | bool]:
    """Where `PYTHON`'s Mirador lives, whether its bytecode is compiled, and the default
    model's GGUF there."""
    found = json.loads(subprocess.run([PYTHON, "-c", INSTALL], capture_output=True, text=True,
                                      check=True, cwd=tempfile.gettempdir()).stdout)
    return {"source": found["source"], "bytecode": Path(found["bytecode"]).exists(),
            "gguf": found["gguf"]}


def bare_run(model: BenchModel) -> dict[str, float]:
    cfg = {"path": str(model.path), "n_ctx": model.n_ctx, "threads": model.threads,
           "n_batch": model.n_batch, "prefix": list(model.prefix), "question": QUESTION}
    return timed_lines([PYTHON, "-c", BARE, json.dumps(cfg)], os.environ.copy(),
                       {"token": "TOKEN"})


def mirador_run(gguf: Path | None, used: bool = False) -> dict[str, float]:
    """A timed `mirador ask` in a fresh home; `used`: the home answered once before (an
    untimed ask), as on any day after the first: it holds that answer, its memory, and
    the warm-start hint (`mirador.warmstart`)."""
    home = Path(tempfile.mkdtemp(prefix="mirador-cold-"))
    try:
        prepare_home(home, gguf)
        for stamp in (home / "models").glob("*.verified"):  # as new as a new user's home:
            stamp.unlink()  # its first ask checks the packaged model's SHA-256
        env = {**os.environ, "MIRADOR_HOME": str(home)}
        ask = [PYTHON, "-m", "mirador", "ask", "--json"]
        if used:
            subprocess.run([*ask, "Name one habit that helps sleep."], env=env, check=True,
                           capture_output=True, timeout=600)
        return timed_lines([*ask, QUESTION], env,
                           {"ack": '"type": "ack"', "stage_start": '"type": "stage_start"',
                            "token": '"type": "token"'})
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure(runs: int, model: BenchModel, gguf: Path | None) -> list[dict[str, float]]:
    rows = []
    for i in range(runs):
        order = ["bare", "new", "used"] if i % 2 else ["used", "new", "bare"]
        seen = {which: (bare_run(model) if which == "bare" else
                        mirador_run(gguf, used=which == "used")) for which in order}
        bare, mine, used = seen["bare"], seen["new"], seen["used"]
        rows.append({"bare_s": bare["token"], "mirador_s": mine["token"],
                     "mirador_ack_s": mine.get("ack", float("nan")),
                     "mirador_stage_start_s": mine.get("stage_start", float("nan")),
                     "ratio": mine["token"] / bare["token"],
                     "used_s": used["token"], "used_ack_s": used.get("ack", float("nan")),
                     "used_ratio": used["token"] / bare["token"]})
        print(f"run {i + 1}: bare {bare['token']:.2f} s, mirador new home {mine['token']:.2f} s "
              f"(ratio {rows[-1]['ratio']:.2f}), used home {used['token']:.2f} s "
              f"(ratio {rows[-1]['used_ratio']:.2f})", flush=True)
    return rows


def summarise(rows: list[dict[str, float]]) -> dict:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    ratio = med("mirador_s") / med("bare_s")
    used = med("used_s") / med("bare_s")
    return {"runs": len(rows), "bare_median_s": med("bare_s"), "mirador_median_s": med("mirador_s"),
            "mirador_ack_median_s": med("mirador_ack_s"),
            "mirador_stage_start_median_s": med("mirador_stage_start_s"),
            "ratio_of_medians": ratio, "median_paired_ratio": med("ratio"),
            "used_median_s": med("used_s"), "used_ack_median_s": med("used_ack_s"),
            "used_ratio_of_medians": used, "used_median_paired_ratio": med("used_ratio"),
            "target": TARGET, "target_met": ratio <= TARGET, "used_target_met": used <= TARGET,
            "rows": rows}


NO_BYTECODE = "NO bytecode: every module compiled from source at each start"


def print_table(summary: dict, model: BenchModel, install: dict[str, str | bool]) -> None:
    print(f"\n{model.path.name}, n_ctx {model.n_ctx}, {model.threads} threads, "
          f"{summary['runs']} runs each, alternating; Mirador from {install['source']} "
          f"({'bytecode compiled' if install['bytecode'] else NO_BYTECODE})\n")
    print("| process start to first model token | median |\n|---|---|")
    print(f"| bare llama-cpp-python script | {summary['bare_median_s']:.2f} s |")
    print(f"| `mirador ask --json` (fresh home, learning and memory on) | "
          f"{summary['mirador_median_s']:.2f} s |")
    print(f"| ratio (target <= {TARGET}) | {summary['ratio_of_medians']:.2f} "
          f"({'met' if summary['target_met'] else 'NOT met'}) |")
    print(f"| `mirador ask --json`, home that answered once before | "
          f"{summary['used_median_s']:.2f} s |")
    print(f"| ratio (target <= {TARGET}) | {summary['used_ratio_of_medians']:.2f} "
          f"({'met' if summary['used_target_met'] else 'NOT met'}) |")
    print(f"\nmirador: ack at {summary['mirador_ack_median_s']:.2f} s, first stage starts at "
          f"{summary['mirador_stage_start_median_s']:.2f} s (medians); median of per-run "
          f"ratios {summary['median_paired_ratio']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--gguf", type=Path, help="a GGUF to run in place of the default model")
    parser.add_argument("--python", type=Path, help="the interpreter both sides run with")
    args = parser.parse_args()
    global PYTHON
    PYTHON = str(args.python or sys.executable)
    install = installed()
    probe_home = Path(tempfile.mkdtemp(prefix="mirador-cold-probe-"))
    model = prepare_home(probe_home, args.gguf)
    if args.gguf is None:  # the default model as that interpreter's Mirador finds it
        model = replace(model, path=Path(str(install["gguf"])))
    bare_run(model)  # the first read of the GGUF from disk counts for neither side
    summary = summarise(measure(args.runs, model, args.gguf))
    shutil.rmtree(probe_home, ignore_errors=True)
    print_table(summary, model, install)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**summary, "model": model.path.name, "n_ctx": model.n_ctx,
                                   "threads": model.threads, "cpu_count": os.cpu_count(),
                                   "python": PYTHON, "mirador": install["source"],
                                   "bytecode": install["bytecode"],
                                   "question": QUESTION}, indent=2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
