"""Model DNA verbosity through the whole orchestrator: final answers' length and quality.

Over bench/data/quality_questions.jsonl (split once by seed 9 into a tuning and a
held-out half, as bench/quality.py), each question is answered by Mirador's
orchestrator as `mirador ask` runs it (routing picks the stages, the gate picks
the final answer), with `PersonalShaper` shaping every stage's request, three
times in the same run: Model DNA never set (the baseline), verbosity 0.2 and
verbosity 0.9. Measured on the final answers (`done.answer`), with
bench/quality.py's measures: median words, relevance (matched@1: the answer's
nearest question among all the set's is its own, MiniLM), degenerate share
(empty, echo, loops, same as another answer, prompt text), and answers cut by the
token limit mid-sentence.

    python bench/dna.py [--split heldout|tuning] [--limit N] [--quick]
        [--lengths '{"base": 0.2, ...}']   # tuning only: override dna.Lengths fields

Constants (`mirador.learning.dna.LENGTHS`) are chosen with `--split tuning`; the
README reports `--split heldout`. Writes bench/results/dna.json (or --out).
On the shared 2-core machine answers are slow and timings noisy; lengths and
relevance do not depend on speed (greedy-free sampling is seeded per request).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench import quality  # noqa: E402

from mirador.learning import dna as dna_module  # noqa: E402
from mirador.learning.dna import DNA  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dna.json"
PROFILES: dict[str, DNA | None] = {"never set": None, "verbosity 0.2": DNA(verbosity=0.2),
                                   "verbosity 0.9": DNA(verbosity=0.9)}
SENTENCE_END = (".", "!", "?", ":", ")", '"', "*")


STAMPS = Path(tempfile.mkdtemp(prefix="mirador-dna-stamps-"))  # the model verified once


def write_home(home: Path) -> None:
    """bench/quality.py's throw-away home (no memory, no learning, the default stages),
    with the default model's verified stamp once a first profile has made it."""
    args = argparse.Namespace(tokens="160,200,220", temperature=None, repeat_penalty=None,
                              top_p=None)
    quality.write_home(home, args)
    (home / "models").mkdir(exist_ok=True)
    for stamp in STAMPS.glob("*.verified"):
        shutil.copy2(stamp, home / "models")


def keep_stamps(home: Path) -> None:
    for stamp in (home / "models").glob("*.verified"):
        shutil.copy2(stamp, STAMPS)


def set_dna(home: Path, profile: DNA | None) -> None:
    from mirador.learning.store import LearningStore

    if profile is not None:
        with closing(LearningStore.in_home(home)) as store:
            store.save_dna(profile, "set")


@dataclasses.dataclass
class Row(quality.Row):
    """bench/quality.py's row, with the stages that did not end "ok" (a deadline under load)."""

    not_ok: list[str] = dataclasses.field(default_factory=list)


async def answer(orchestrator: Any, question: str) -> quality.Row:
    from mirador.orchestration.events import Done

    row = Row(question)
    started = time.perf_counter()
    async for event in orchestrator.process(question):
        if isinstance(event, Done):
            for name, staged in event.answers.items():
                row.answers[name] = quality.Answer(staged.text, None, 0.0)
            row.answers["final"] = quality.Answer(event.answer, event.ttft,
                                                  time.perf_counter() - started)
            row.chosen, row.reason = event.final_stage, event.chosen_because
            row.not_ok = [f"{name}: {staged.status}" for name, staged in event.answers.items()
                          if staged.status != "ok"]  # a stage cut by a deadline shows here
    return row


async def run_profile(profile: DNA | None, questions: list[str]) -> list[quality.Row]:
    from mirador.learning.personal import PersonalShaper
    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="mirador-dna-") as tmp:
        home = Path(tmp)
        write_home(home)
        set_dna(home, profile)
        settings = load_settings(home=home, env={"MIRADOR_HOME": str(home)})
        orchestrator = Orchestrator(settings)
        personal = PersonalShaper(settings)
        orchestrator.shapers.append(personal)
        orchestrator.planner.shapers.append(personal)
        rows = []
        try:
            for i, question in enumerate(questions, 1):
                rows.append(await answer(orchestrator, question))
                print(f"  {i}/{len(questions)} {len(rows[-1].answers['final'].text.split())} "
                      f"words ({rows[-1].chosen})", file=sys.stderr)
        finally:
            await orchestrator.aclose()
            keep_stamps(home)
    return rows


def cut_mid_sentence(text: str) -> bool:
    stripped = text.rstrip()
    return bool(stripped) and not stripped.endswith(SENTENCE_END)


def summary(rows: list[quality.Row], every: list[str], reporter: Any) -> dict[str, Any]:
    measured = quality.measure("final", rows, every, reporter.q_vectors, reporter.embedder,
                               reporter.prompts)
    texts = [r.answers["final"].text for r in rows]
    return {"words_median": statistics.median(len(t.split()) for t in texts),
            "matched_at_1": measured["matched_at_1"], "degenerate": measured["degenerate"],
            "degenerate_by_reason": measured["degenerate_by_reason"],
            "cut_mid_sentence": round(sum(map(cut_mid_sentence, texts)) / len(texts), 3),
            "final_from": {s: sum(r.chosen == s for r in rows) for s in quality.STAGES},
            "stages_not_ok": [n for r in rows if isinstance(r, Row) for n in r.not_ok],
            "seconds_median": measured["seconds_median"]}


def table(results: dict[str, Any]) -> str:
    head = (f"{'Model DNA':<16}{'words':>7}{'matched@1':>11}{'degenerate':>12}"
            f"{'cut mid-sentence':>18}{'seconds':>9}")
    lines = [head, "-" * len(head)]
    for name, r in results["profiles"].items():
        lines.append(f"{name:<16}{r['words_median']:>7.0f}{r['matched_at_1']:>11.2f}"
                     f"{r['degenerate']:>11.0%} {r['cut_mid_sentence']:>17.0%}"
                     f"{r['seconds_median']:>9.1f}")
    lines.append(f"median words, verbosity 0.9 / 0.2: {results['ratio_0.9_over_0.2']}x")
    for name, r in results["profiles"].items():
        if r["stages_not_ok"]:
            lines.append(f"{name}: stages cut: {', '.join(r['stages_not_ok'])}")
    return "\n".join(lines)


def examples(found: dict[str, list[quality.Row]], count: int) -> str:
    out = []
    for i in range(min(count, len(next(iter(found.values()))))):
        out.append(f"\nQ: {found['never set'][i].question}")
        for name, rows in found.items():
            text = rows[i].answers["final"].text.replace("\n", " / ")
            out.append(f"  {name} ({rows[i].chosen}): {text[:300]}")
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="heldout", choices=["tuning", "heldout"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--quick", action="store_true", help="the first 8 questions")
    parser.add_argument("--lengths", default=None,
                        help="JSON overriding mirador.learning.dna.Lengths (tuning only)")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick and not args.limit:
        args.limit = 8
    return args


def main() -> None:
    args = parse_args()
    if args.lengths:
        dna_module.LENGTHS = dataclasses.replace(dna_module.LENGTHS, **json.loads(args.lengths))
    every, questions = quality.load_questions(args.split)
    questions = questions[:args.limit] if args.limit else questions
    reporter = quality.Reporter(argparse.Namespace(), every, len(questions))
    started = time.perf_counter()
    found = {name: asyncio.run(run_profile(profile, questions))
             for name, profile in PROFILES.items()}
    profiles = {name: summary(rows, every, reporter) for name, rows in found.items()}
    low, high = (profiles[n]["words_median"] for n in ("verbosity 0.2", "verbosity 0.9"))
    results = {"split": args.split, "questions": len(questions),
               "minutes": round((time.perf_counter() - started) / 60, 1),
               "load_average": os.getloadavg(),
               "lengths": dataclasses.asdict(dna_module.LENGTHS), "profiles": profiles,
               "ratio_0.9_over_0.2": round(high / max(low, 1), 2),
               "answers": [{"question": rows[0].question,
                            **{n: found[n][i].answers["final"].text for n in found}}
                           for i, rows in enumerate(zip(*found.values(), strict=True))]}
    print(f"\nModel DNA, {args.split} half ({len(questions)} questions), whole orchestrator, "
          f"load average {results['load_average'][0]:.2f}, {results['minutes']} min\n")
    print(table(results))
    print(examples(found, args.examples))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
