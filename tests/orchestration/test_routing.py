"""Routing by complexity, measured on the shared workload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirador.orchestration.routing import classify, speaks_of_me

WORKLOAD = Path(__file__).resolve().parents[3] / "shared" / "workload" / "queries.jsonl"


def workload() -> list[dict[str, str]]:
    return [json.loads(line) for line in WORKLOAD.read_text().splitlines() if line.strip()]


def test_accuracy_on_the_shared_workload_is_at_least_85_percent() -> None:
    queries = workload()
    right = [q for q in queries if classify(q["query"]).complexity == q["complexity"]]
    accuracy = len(right) / len(queries)
    assert len(queries) >= 30
    assert accuracy >= 0.85, f"routing accuracy {accuracy:.2%}"


@pytest.mark.parametrize("query", ["what is the capital of france?",
                                   "WHAT IS THE CAPITAL OF FRANCE?"])
def test_case_does_not_matter(query: str) -> None:
    assert classify(query).complexity == "simple"


@pytest.mark.parametrize(("query", "expected"), [
    ("Define entropy", "simple"),
    ("How do I make my mornings calmer?", "medium"),
    ("Should I rent or buy a flat next year?", "medium"),
    ("Evaluate in depth the long-term trade-offs of remote work for a small design studio, "
     "considering hiring, culture and costs", "complex"),
])
def test_unseen_queries(query: str, expected: str) -> None:
    assert classify(query).complexity == expected


def test_the_decision_names_its_reasons() -> None:
    route = classify("Analyze the pros and cons of index funds")
    assert any("depth" in reason for reason in route.reasons)


@pytest.mark.parametrize("query,about_me", [
    ("When is my dentist appointment?", True), ("Suggest a dinner I can safely eat.", True),
    ("Where do we keep the spare key?", True), ("What is the capital of Peru?", False),
    ("Explain how a mortgage works", False), ("Summarise the myriad of options", False)])
def test_a_question_that_speaks_of_the_person(query: str, about_me: bool) -> None:
    assert speaks_of_me(query) is about_me
