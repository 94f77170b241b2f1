"""The deploy gate's general-quality check: an adapter must not make plain answers worse.

Besides the general set's loss (trainer.py), a new adapter answers a few everyday
questions (`general_questions.yaml`, the first `training.quality_questions`)
greedily under llama.cpp, and so does the adapter in use (or the base model).
Measured as bench/quality.py measures answers: relevance, matched@1 (an answer's
nearest question among all the file's, by MiniLM, is its own), and degenerate
answers (empty, echoing the question, a 4-word sequence three times or more,
near-identical to another question's answer). The new adapter is rejected when
either count gets worse. Greedy and small, so it costs seconds, not minutes; a
single flipped answer rejects, which is the point of a gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mirador.orchestration.quality import max_repeats, overlap
from mirador.training import judge

SAME_ANSWER = 0.9  # cosine at which two questions' answers count as the same answer


@dataclass(frozen=True)
class GeneralQuality:
    """How many of `questions` answers were relevant (matched@1) and degenerate."""

    matched: int
    degenerate: int
    questions: int


def general_questions() -> list[str]:
    """The gate's everyday questions (training/general_questions.yaml)."""
    text = resources.files("mirador.training").joinpath("general_questions.yaml").read_text()
    return [str(q) for q in yaml.safe_load(text)]


def measure(base: Path, adapter: Path | None, system: str | None, count: int, tokens: int,
            threads: int = 1, embedder: Any = None,
            repeat_penalty: float | None = None) -> GeneralQuality:
    """Answer the first `count` general questions greedily (with the persona's system
    prompt and repeat penalty, as it answers) and measure the answers."""
    every = general_questions()
    asked = every[:count]
    answers = judge.generate(base, adapter, asked, system, tokens, threads, repeat_penalty)
    embedder = embedder or _minilm()
    return score(asked, answers, every, embedder)


def score(asked: list[str], answers: list[str], every: list[str],
          embedder: Any) -> GeneralQuality:
    """matched@1 among `every` question and degenerate answers, counted."""
    q_vectors = embedder.embed(every)
    a_vectors = embedder.embed([a or " " for a in answers])
    nearest = (a_vectors @ q_vectors.T).argmax(axis=1)
    matched = sum(every[n] == q for n, q in zip(nearest, asked, strict=True))
    similar = a_vectors @ a_vectors.T
    np.fill_diagonal(similar, 0.0)
    degenerate = sum(_degenerate(q, a, bool((similar[i] >= SAME_ANSWER).any()))
                     for i, (q, a) in enumerate(zip(asked, answers, strict=True)))
    return GeneralQuality(int(matched), int(degenerate), len(asked))


def _degenerate(question: str, answer: str, same_as_another: bool) -> bool:
    if not answer.strip():
        return True
    echoes = overlap(answer, question) >= 0.6
    return echoes or max_repeats(answer) >= 3 or same_as_another


def worse(before: GeneralQuality, after: GeneralQuality, against: str) -> str | None:
    """Why `after` is worse than `before` on the general questions, or None."""
    if after.matched < before.matched:
        return (f"general questions lost relevance: {after.matched}/{after.questions} "
                f"answers matched their question against {before.matched}/{before.questions} "
                f"with {against}")
    if after.degenerate > before.degenerate:
        return (f"general questions got degenerate answers: {after.degenerate}/"
                f"{after.questions} against {before.degenerate}/{before.questions} with "
                f"{against}")
    return None


def _minilm() -> Any:
    from mirador.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder.load()
