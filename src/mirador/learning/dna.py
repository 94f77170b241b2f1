"""Model DNA: a small, typed profile of how the person likes answers, applied to every persona.

Kept in the ratings database (`dna` table, one row per version, the newest in
force), so it is versioned and travels with the ratings. It changes three ways:
`mirador dna set KEY VALUE` (source "set"), `mirador dna reset` (back to the
neutral profile), and rating notes such as "too long" or "more detail" (source
"learned", one small step per note). A profile that was never set shapes
nothing. `staged()` says what it does to the stages routing picks (technical
depth: a shallow profile runs only the first stage of a simple or medium query,
a deep one the full stages) and which answer length the judge should favour
(verbosity). `shaping()` says what a profile does to a request: a line for the
system prompt, a factor on the persona's max tokens, and at the ends of the
verbosity scale a request added to the question and (brief) a stop at the first
blank line, so a short answer ends at a paragraph's end, not mid-sentence.
The constants (`LENGTHS`) were chosen on the tuning half of `bench/dna.py`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mirador.errors import ConfigError

STEP = 0.1  # how far one rating note moves verbosity or depth


class DNA(BaseModel):
    """How the person likes answers. Numbers run from 0 (least) to 1 (most)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reasoning_style: Literal["direct", "step-by-step", "socratic"] = "direct"
    verbosity: float = Field(default=0.5, ge=0.0, le=1.0)
    technical_depth: float = Field(default=0.5, ge=0.0, le=1.0)
    frameworks: tuple[str, ...] = ()  # e.g. first principles, cost-benefit
    domains: tuple[str, ...] = ()  # what the person knows well
    pace: Literal["brisk", "steady", "patient"] = "steady"
    evidence: Literal["none", "examples", "sources"] = "examples"


LIST_KEYS = ("frameworks", "domains")


@dataclass(frozen=True)
class Version:
    """One stored profile: its number, where it came from and when."""

    number: int
    dna: DNA
    source: str  # default, set, reset, learned
    created_at: float
    note: str = ""


@dataclass(frozen=True)
class Lengths:
    """How verbosity becomes length (chosen on the tuning half of `bench/dna.py`).

    max tokens x (`base` + `slope` x verbosity), at least `floor` tokens, outside the
    middle band; within it (`brief_below` to `full_above`) the persona's own max tokens
    (a profile set only for its depth leaves length alone); below
    `brief_below` the answer is asked for briefly (`brief`, in the system prompt,
    and `brief_ask` after the question) and stops at `brief_stop`; above
    `full_above` it is asked for in full (`full`, `full_ask`).
    """

    base: float = 0.1
    slope: float = 2.5
    floor: int = 16
    brief_below: float = 0.35
    full_above: float = 0.65
    brief: str = "Answer very briefly: one or two short sentences."
    brief_ask: str = "Answer in one or two sentences."
    brief_stop: tuple[str, ...] = ("\n\n",)  # the first paragraph: it ends a sentence
    full: str = "Answer thoroughly: give specifics, the steps to take and an example."
    full_ask: str = "Answer in three to five paragraphs."

    def factor(self, verbosity: float) -> float:
        if self.brief_below <= verbosity <= self.full_above:
            return 1.0
        return round(self.base + self.slope * verbosity, 3)

    def prefer(self, verbosity: float) -> Literal["shorter", "longer"] | None:
        """The answer length the judge should favour among sound stages, if any."""
        if verbosity < self.brief_below:
            return "shorter"
        return "longer" if verbosity > self.full_above else None


LENGTHS = Lengths()


@dataclass(frozen=True)
class Depths:
    """How technical depth decides which stages run, for a query routing (or the learner's
    'auto') planned: below `shallow_below` a query the router did not call complex runs
    only its first stage; above `deep_above` every query runs the stages a complex one does."""

    shallow_below: float = 0.35
    deep_above: float = 0.65


DEPTHS = Depths()


@dataclass(frozen=True)
class StagePlan:
    """What a profile does to a routed plan: the stages to run and what it did, in words."""

    stages: tuple[str, ...]
    changes: tuple[str, ...] = ()
    prefer: Literal["shorter", "longer"] | None = None


def staged(dna: DNA, complexity: str, stages: tuple[str, ...], full: tuple[str, ...],
           depths: Depths | None = None) -> StagePlan:
    """The stages a routed plan of `complexity` runs under `dna` (`full`: a complex
    query's stages), the answer length the judge should favour, and why."""
    depths, changes = depths or DEPTHS, []
    depth, picked = dna.technical_depth, stages
    if complexity != "complex" and depth < depths.shallow_below and len(stages) > 1:
        picked = stages[:1]
        changes.append(f"technical depth {depth:g} < {depths.shallow_below:g}: only "
                       f"{picked[0]} ran (dropped {', '.join(stages[1:])})")
    elif depth > depths.deep_above and set(stages) < set(full):
        picked = full
        added = [s for s in full if s not in stages]
        changes.append(f"technical depth {depth:g} > {depths.deep_above:g}: the full stages "
                       f"ran (added {', '.join(added)})")
    prefer = LENGTHS.prefer(dna.verbosity) if len(picked) > 1 else None
    if prefer:
        changes.append(f"verbosity {dna.verbosity:g}: the judge favours the {prefer} "
                       "sound answer")
    return StagePlan(picked, tuple(changes), prefer)


def _plan_rule(dna: DNA, depths: Depths | None = None) -> str:
    depths = depths or DEPTHS
    if dna.technical_depth < depths.shallow_below:
        return "simple and medium queries run only their first stage"
    if dna.technical_depth > depths.deep_above:
        return "every query runs the full stages"
    return ""


@dataclass(frozen=True)
class Shaping:
    """What a profile does to a request: a system prompt line, a max-tokens factor, a
    request added after the question and stop strings."""

    instruction: str
    token_factor: float
    ask: str = ""
    stop: tuple[str, ...] = ()
    floor: int = 16
    plan: str = ""  # what it does to the stages routing picks (technical depth)

    def tokens(self, max_tokens: int | None) -> int | None:
        return (None if max_tokens is None
                else max(self.floor, round(max_tokens * self.token_factor)))

    def effect(self) -> str:
        """What it does, in one line (for `mirador why` and `mirador dna show`)."""
        text = (f"max tokens x{self.token_factor:g}; system prompt + "
                f"{self.instruction or '(nothing)'!r}")
        if self.ask:
            text += f"; after the question {self.ask!r}"
        if self.stop:
            text += f"; stops at {', '.join(repr(s) for s in self.stop)}"
        if self.plan:
            text += f"; {self.plan}"
        return text


def parse_value(key: str, text: str) -> Any:
    """`text` as KEY's value: a number, a word, or a comma-separated list."""
    if key not in DNA.model_fields:
        raise ConfigError(f"'{key}' is not part of Model DNA; the keys are: "
                          f"{', '.join(DNA.model_fields)}")
    if key in LIST_KEYS:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return text.strip()


def changed(dna: DNA, key: str, text: str) -> DNA:
    """`dna` with KEY set from `text`, validated (a ConfigError says what is allowed)."""
    data = dna.model_dump()
    data[key] = parse_value(key, text)
    try:
        return DNA.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise ConfigError(f"Model DNA {key} = {text!r}: {problem}") from None


_NOTES = (
    (re.compile(r"too (long|verbose|wordy)|shorter|less detail|too much", re.I),
     "verbosity", -STEP),
    (re.compile(r"too short|more detail|longer|elaborate|too brief", re.I), "verbosity", STEP),
    (re.compile(r"too technical|simpler|plainer|jargon", re.I), "technical_depth", -STEP),
    (re.compile(r"more technical|deeper|too shallow|too simple", re.I), "technical_depth", STEP),
)


def learned(dna: DNA, note: str) -> DNA | None:
    """`dna` nudged by a rating note ("too long", "more detail"), or None if it says nothing."""
    data = dna.model_dump()
    moved = False
    for pattern, key, step in _NOTES:
        if pattern.search(note):
            data[key] = round(min(1.0, max(0.0, data[key] + step)), 3)
            moved = True
    return DNA.model_validate(data) if moved else None


def shaping(dna: DNA, lengths: Lengths | None = None) -> Shaping:
    """The system prompt line, length budget, added request and stops a profile asks for."""
    lengths = lengths or LENGTHS
    brief, full = dna.verbosity < lengths.brief_below, dna.verbosity > lengths.full_above
    parts = [lengths.brief if brief else lengths.full if full else "",
             _depth(dna.technical_depth), _STYLE[dna.reasoning_style],
             _EVIDENCE[dna.evidence], _PACE[dna.pace]]
    if dna.frameworks:
        parts.append(f"Reason with {', '.join(dna.frameworks)} where it helps.")
    if dna.domains:
        parts.append(f"The person knows {', '.join(dna.domains)} well; do not over-explain "
                     "those.")
    ask = lengths.brief_ask if brief else lengths.full_ask if full else ""
    return Shaping(" ".join(p for p in parts if p), lengths.factor(dna.verbosity), ask,
                   lengths.brief_stop if brief else (), lengths.floor, _plan_rule(dna))


def _depth(depth: float) -> str:
    if depth < 0.35:
        return "Use plain words, no jargon."
    if depth > 0.65:
        return "Be technical and precise."
    return ""


_STYLE = {"direct": "", "step-by-step": "Reason step by step.",
          "socratic": "Guide with a question where it helps."}
_EVIDENCE = {"none": "", "examples": "", "sources": "Say what each claim rests on."}
_PACE = {"brisk": "Get to the point at once.", "steady": "", "patient": "Take it slowly."}


def current(db: sqlite3.Connection) -> Version:
    """The profile in force (version 0, the neutral profile, when none was stored)."""
    row = db.execute("SELECT version, profile, source, created_at, note FROM dna "
                     "ORDER BY version DESC LIMIT 1").fetchone()
    return _version(row) if row is not None else Version(0, DNA(), "default", 0.0)


def save(db: sqlite3.Connection, dna: DNA, source: str, note: str = "") -> Version:
    """Store `dna` as the newest version (inside the caller's transaction)."""
    when = time.time()
    cursor = db.execute("INSERT INTO dna (profile, source, note, created_at) "
                        "VALUES (?, ?, ?, ?)", (dna.model_dump_json(), source, note, when))
    return Version(int(cursor.lastrowid or 0), dna, source, when, note)


def history(db: sqlite3.Connection) -> list[Version]:
    rows = db.execute("SELECT version, profile, source, created_at, note FROM dna "
                      "ORDER BY version").fetchall()
    return [_version(row) for row in rows]


def _version(row: Any) -> Version:
    return Version(int(row[0]), DNA.model_validate(json.loads(row[1])), row[2],
                   float(row[3]), row[4] or "")


def in_force_at(versions: list[Version], when: float) -> Version:
    """The version that was in force at `when` (version 0 before any was stored)."""
    earlier = [v for v in versions if v.created_at <= when]
    return earlier[-1] if earlier else Version(0, DNA(), "default", 0.0)


def describe(version: Version) -> dict[str, Any]:
    """What a version did to answers, for `mirador why`."""
    if version.number == 0:
        return {"version": 0, "effect": "none (Model DNA never set)"}
    shaped = shaping(version.dna)
    return {"version": version.number, "source": version.source,
            "dna": version.dna.model_dump(mode="json"),
            "effect": shaped.effect()}
