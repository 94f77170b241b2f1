"""The deploy gate's general questions: an adapter that makes plain answers less relevant or
degenerate is rejected with the reason; one that does not is let through."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.catalog.manifest import load_manifest
from mirador.training import gate
from mirador.training.trainer import verdict
from tests.support.tiny_gguf import write_lora_for

QUESTIONS = 3  # greedy, 48 tokens each: seconds on two busy cores
TOKENS = 48


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from mirador.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder.load()


@pytest.mark.timeout(600)
def test_a_breaking_adapter_fails_the_general_questions_and_a_gentle_one_passes(
        smollm_gguf: Path, tmp_path: Path, embedder: object) -> None:
    quick = load_manifest(None).resolve("quick")  # answered as the persona answers
    asked = {"system": quick.system, "count": QUESTIONS, "tokens": TOKENS, "embedder": embedder,
             "repeat_penalty": quick.options.repeat_penalty}
    base = gate.measure(smollm_gguf, None, **asked)
    assert base.questions == QUESTIONS and base.matched == QUESTIONS and base.degenerate == 0
    # an adapter that changes nothing must pass (greedy answers of a 135M model flip
    # at the slightest push, so "gentle" here means none)
    idle = write_lora_for(smollm_gguf, tmp_path / "idle.gguf", rank=2, strength=0.0)
    kept = gate.measure(smollm_gguf, idle, **asked)
    assert gate.worse(base, kept, "the base model") is None, kept
    breaking = write_lora_for(smollm_gguf, tmp_path / "breaking.gguf", rank=8, strength=3.0)
    broken = gate.measure(smollm_gguf, breaking, **asked)
    reason = gate.worse(base, broken, "the base model")
    assert reason is not None and "general questions" in reason, broken


def test_the_verdict_rejects_worse_general_answers_with_the_reason() -> None:
    metrics = {"held_out_loss_before": 2.0, "held_out_loss_after": 1.0,
               "general_loss_before": 1.4, "general_loss_after": 1.5, "general_questions": 6,
               "general_matched_before": 6, "general_matched_after": 5,
               "general_degenerate_before": 0, "general_degenerate_after": 0}
    accepted, reason = verdict(metrics, tolerance=1.0, has_current=True)
    assert not accepted
    assert reason == ("general questions lost relevance: 5/6 answers matched their question "
                      "against 6/6 with the adapter in use")
    degenerate = {**metrics, "general_matched_after": 6, "general_degenerate_after": 2}
    accepted, reason = verdict(degenerate, tolerance=1.0, has_current=False)
    assert not accepted and reason.startswith("general questions got degenerate answers: 2/6")
    fine = {**metrics, "general_matched_after": 6}
    accepted, reason = verdict(fine, tolerance=1.0, has_current=False)
    assert accepted and "general questions matched 6 -> 6 of 6, degenerate 0 -> 0" in reason


def test_the_general_questions_are_distinct_everyday_questions() -> None:
    questions = gate.general_questions()
    assert len(questions) >= 12 and len(set(questions)) == len(questions)
