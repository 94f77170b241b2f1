"""Tool routing: arithmetic to the calculation chain, questions on your documents to theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.catalog.manifest import manifest_for
from mirador.orchestration.hooks import Query
from mirador.settings import Settings
from mirador.tools.docs import DocsIndex
from mirador.tools.routing import DocsRouter, ToolRouter, is_arithmetic


@pytest.mark.parametrize("text", [
    "What is 17.5% of 2,340 plus 12 squared?", "how much is 345 times 12", "12 * 7?",
    "What's 2 to the power of 10", "square root of 81", "100 divided by 7", "5 cubed",
])
def test_arithmetic_is_recognised(text: str) -> None:
    assert is_arithmetic(text)


@pytest.mark.parametrize("text", [
    "What should I focus on today?", "I have 3 kids and 2 dogs; how do I plan a holiday?",
    "Is a 401k better than an IRA?", "Write a poem about 2024", "My rent went up 5% this year",
])
def test_other_questions_are_not(text: str) -> None:
    assert not is_arithmetic(text)


def test_routes_pick_their_chains(settings: Settings, tmp_path: Path) -> None:
    manifest = manifest_for(settings)
    assert ToolRouter(manifest).choose(Query("What is 3 plus 4?")).chain == "calculation"  # type: ignore[union-attr]
    assert ToolRouter(manifest).choose(Query("Plan my week")) is None
    index = DocsIndex(settings)
    router = DocsRouter(manifest, index)
    assert router.choose(Query("How much is my rent?")) is None  # nothing indexed yet
    (tmp_path / "lease.md").write_text("The monthly rent is 1,180 euros, due on the 5th.")
    index.add(tmp_path)
    choice = router.choose(Query("How much is my rent?"))
    assert choice is not None and choice.chain == "documents" and "lease.md" in choice.reason
    assert router.choose(Query("Who painted the Mona Lisa?")) is None
