"""Routing by complexity: how many stages a query deserves.

A query's complexity is scored from signals that hold across phrasings, all
case-insensitive: its length and number of clauses, verbs that ask for depth
("analyse", "evaluate", "design", "explain in depth"), words that ask for a
plan or a judgement ("should I", "how do I", "plan"), and openers that ask
for a single fact ("what is", "convert", "name two"). Each signal adds to or
takes from one score; two thresholds cut it into simple, medium and complex.
`Route.reasons` says which signals fired, so a decision can be explained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Complexity = Literal["simple", "medium", "complex"]

# Asking for depth, breadth or a judgement across several factors.
_DEPTH = re.compile(
    r"\b(analy[sz]\w*|evaluat\w*|assess\w*|in depth|in detail|detailed|comprehensive\w*|"
    r"thorough\w*|trade-?offs?|implications?|strateg\w+|architecture|design (a|an|the)\b|"
    r"develop (a|an|the)\b|pros and cons|consider\w*|recommend\w*|propose\w*|evidence|"
    r"long[- ]term|step[- ]by[- ]step|deep\w*|critique|justify|over (the next )?\w+ years)\b",
    re.IGNORECASE)

# Asking for advice, a plan, a comparison or a piece of writing.
_ADVICE = re.compile(
    r"\b(how (do|should|can|could|would) (i|we)|should (i|we)|why (does|do|is|are)|"
    r"plan|draft|write|compare|structure|improve|tips?|learn\w*|best way|good way|"
    r"help me|what should|apologi[sz]e|prepare|decide|budget|schedule|focus)\b",
    re.IGNORECASE)

# Asking for one fact, one item or a short list.
_FACT = re.compile(
    r"^\s*(what('s| is| are| does) (a |an |the )?\w+( \w+)?\??$|what (is|are|does)\b|"
    r"who (is|was)\b|when (is|was|did)\b|where (is|are)\b|define\b|convert\b|translate\b|"
    r"name (one|two|three|a|an|\d)\b|list (the|one|two|three|\d)\b|give me (a|an|one|the top)\b|"
    r"tell me (a|an|one)\b|suggest a (name|word|title)\b|how (many|much|far|long) is\b|spell\b)",
    re.IGNORECASE)

# The person speaking of themselves, their people or their things: memory may know the answer.
_ABOUT_ME = re.compile(r"\b(my|mine|me|i|i'm|i've|i'd|i'll|we|our|us)\b", re.IGNORECASE)

_CLAUSE = re.compile(r"[,;:]|\b(and|or|but|while|without|because|considering)\b", re.IGNORECASE)
_FIGURE = re.compile(r"[$€£]?\d[\d,.]*\s*(k|m|%|percent)?", re.IGNORECASE)

_MEDIUM_FROM = 1.0
_COMPLEX_FROM = 3.0


@dataclass(frozen=True)
class Route:
    complexity: Complexity
    score: float
    reasons: tuple[str, ...]

    @property
    def runner_up(self) -> tuple[Complexity, float]:
        """The complexity across the nearest threshold, and how far the score is from
        it (in the score's points): how sure the routing is."""
        options: list[tuple[float, Complexity]] = []
        if self.complexity != "simple":  # the threshold below
            floor = _MEDIUM_FROM if self.complexity == "medium" else _COMPLEX_FROM
            options.append((self.score - floor, _band(floor - 0.01)))
        if self.complexity != "complex":  # the threshold above
            ceiling = _MEDIUM_FROM if self.complexity == "simple" else _COMPLEX_FROM
            options.append((ceiling - self.score, _band(ceiling)))
        gap, other = min(options)
        return other, round(gap, 2)


def classify(query: str) -> Route:
    """Score `query` and name the signals that decided its complexity."""
    score = 0.0
    reasons: list[str] = []
    words = len(query.split())
    length = max(-1.0, min(3.0, (words - 9) * 0.15))
    score += length
    reasons.append(f"{words} words ({length:+.2f})")
    depth = {m.group(0).lower() for m in _DEPTH.finditer(query)}
    if depth:
        score += min(len(depth), 2) * 1.6
        reasons.append(f"asks for depth: {', '.join(sorted(depth))}")
    advice = _ADVICE.search(query) is not None
    if advice:
        score += 1.5
        reasons.append("asks for advice, a plan or writing")
    elif _FACT.search(query):  # "what is a good way to..." asks for advice, not a fact
        score -= 1.5
        reasons.append("asks for a single fact or short list")
    clauses = len(_CLAUSE.findall(query))
    figures = len(_FIGURE.findall(query))
    if clauses + figures >= 3:
        score += 0.5 * min(clauses + figures - 2, 4)
        reasons.append(f"{clauses} clauses, {figures} figures")
    return Route(_band(score), round(score, 2), tuple(reasons))


def speaks_of_me(query: str) -> bool:
    """Whether `query` speaks of the person asking ("When is my dentist appointment?",
    "Suggest a dinner I can eat"): what they told Mirador before may be the answer itself,
    so the first stage should see it too."""
    return _ABOUT_ME.search(query) is not None


def _band(score: float) -> Complexity:
    if score >= _COMPLEX_FROM:
        return "complex"
    if score >= _MEDIUM_FROM:
        return "medium"
    return "simple"
