"""Routing questions to the personas whose tools answer them.

A question that is arithmetic ("What is 17.5% of 2,340 plus 12 squared?") goes
to the `calculation` chain, whose persona calls `calculate`: a small model
guesses at sums, a tool does not. A question one of the person's indexed
documents bears on (a chunk at least `DOCS_SIMILARITY` near it) goes to the
`documents` chain, whose persona calls `search_docs`. The orchestrator asks its `routes` before its
chooser (the learner); a route that passes leaves the question to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirador.catalog.manifest import Manifest
from mirador.orchestration.hooks import ChainChoice, Query
from mirador.tools.docs import DocsIndex

CALCULATION_CHAIN = "calculation"
DOCUMENTS_CHAIN = "documents"
DOCS_SIMILARITY = 0.45  # a chunk this near the question (cosine) sends it to the documents

_NUMBER = r"\d[\d,]*(\.\d+)?"
_OPERATION = re.compile(
    rf"{_NUMBER}\s*(%|percent\b|[-+*/^×÷]|\*\*|plus\b|minus\b|times\b|divided by\b|"
    rf"multiplied by\b|to the power\b)\s*(of\s+)?[-(]?\s*{_NUMBER}|"
    rf"\b(square root of|sqrt)\s*\(?\s*{_NUMBER}|{_NUMBER}\s+(squared|cubed)\b",
    re.IGNORECASE)


def is_arithmetic(text: str) -> bool:
    """Whether `text` asks for a computation on numbers it states."""
    return _OPERATION.search(text) is not None


@dataclass
class ToolRouter:
    """A `ChainChooser` rule: arithmetic to the calculation chain; None for the rest."""

    manifest: Manifest

    def choose(self, query: Query) -> ChainChoice | None:
        chains = {c.id for c in self.manifest.chains}
        if CALCULATION_CHAIN in chains and is_arithmetic(query.text):
            return ChainChoice(CALCULATION_CHAIN, "math",
                               "the question is arithmetic: a persona with 'calculate' answers")
        return None


@dataclass
class DocsRouter:
    """A `ChainChooser` rule: questions the indexed documents bear on to the documents chain."""

    manifest: Manifest
    index: DocsIndex
    threshold: float = DOCS_SIMILARITY

    def choose(self, query: Query) -> ChainChoice | None:
        if DOCUMENTS_CHAIN not in {c.id for c in self.manifest.chains} or not self.index.files():
            return None
        hits = self.index.search(query.text, limit=1)
        if not hits or hits[0].similarity < self.threshold:
            return None
        return ChainChoice(DOCUMENTS_CHAIN, "documents",
                           f"your document {hits[0].path} bears on it "
                           f"(similarity {hits[0].similarity:.2f})")
