"""Routing questions to the personas whose tools answer them.

A question that is arithmetic ("What is 17.5% of 2,340 plus 12 squared?") goes
to the `calculation` chain, whose persona calls `calculate`: a small model
guesses at sums, a tool does not. The orchestrator asks its `routes` before its
chooser (the learner); a route that passes leaves the question to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirador.catalog.manifest import Manifest
from mirador.orchestration.hooks import ChainChoice, Query

CALCULATION_CHAIN = "calculation"

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
