"""The context compiler: what the later stages are told, within a token budget.

It gathers the most relevant memories, the person's stated preferences and the
recent turns of this session, each with a relevance. Tokens are counted with the
later stage's own tokenizer. When everything does not fit, it keeps items by
relevance and asks the quick model to summarise the rest into the room left.
Text is only ever cut between sentences, never inside one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mirador.memory.phrasing import is_told
from mirador.memory.records import MemoryRecord, Recalled, cut

CountTokens = Callable[[str], Awaitable[int]]
Summarise = Callable[[str, int], Awaitable[str]]

SECTIONS = {
    "preference": "What they have told you about themselves:",
    "memory": "Earlier conversations that bear on this:",
    "turn": "Earlier in this conversation:",
    "summary": "In short, from other memories:",
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
ANSWER_SENTENCES = 2  # of a remembered answer, shown in context
LINE_CHARS = 1_000  # at most this much of a query, and of an answer's gist, per line
MIN_SUMMARY_TOKENS = 12


@dataclass(frozen=True)
class Item:
    relevance: float
    section: str
    text: str
    memory_id: str = ""


@dataclass
class Compiled:
    """The compiled context and what went into it."""

    text: str
    tokens: int
    kept: list[Item] = field(default_factory=list)
    summarised: list[Item] = field(default_factory=list)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def memory_line(record: MemoryRecord) -> str:
    """One memory as a line, in the person's voice (the context is their message): when,
    and what they told; for what they asked, the gist of the answer too (whole sentences).
    What they told is the fact; a small model's reply to it ("A nice reminder!") is not."""
    day = datetime.fromtimestamp(record.timestamp, UTC).strftime("%Y-%m-%d")
    said = cut(record.query.strip(), LINE_CHARS)
    if is_told(record.query):
        return f"- {day}: I told you: \"{said}\""
    gist = cut(" ".join(sentences(record.response)[:ANSWER_SENTENCES]), LINE_CHARS)
    answer = f" You answered: {gist}" if gist else ""
    return f"- {day}: I asked \"{said}\".{answer}"


def _same_words(a: str, b: str) -> bool:
    return " ".join(a.lower().split()).rstrip("?!. ") == " ".join(b.lower().split()).rstrip("?!. ")


def items_for(memories: Sequence[Recalled], preferences: Sequence[Recalled],
              turns: Sequence[MemoryRecord], question: str = "") -> list[Item]:
    """Everything that could go in, each with a relevance; one memory appears once. An
    earlier asking of this very `question` is left out: it holds no fact, only an earlier
    answer, which the model would repeat rather than answer from what it was told."""
    items: list[Item] = []
    seen: set[str] = set()
    for rank, turn in enumerate(reversed(turns)):  # the latest turn matters most
        seen.add(turn.id)
        gist = cut(" ".join(sentences(turn.response)[:ANSWER_SENTENCES]), LINE_CHARS)
        items.append(Item(1.0 - 0.05 * rank, "turn",
                          f"- They asked \"{cut(turn.query.strip(), LINE_CHARS)}\"; you said: "
                          f"{gist}", turn.id))
    for hit in memories:
        if question and _same_words(hit.record.query, question):
            continue
        if hit.record.id not in seen:
            seen.add(hit.record.id)
            items.append(Item(hit.score, "memory", memory_line(hit.record), hit.record.id))
    for hit in preferences:
        if hit.record.id not in seen:
            seen.add(hit.record.id)
            items.append(Item(hit.score, "preference",
                              f"- {cut(hit.record.query.strip(), LINE_CHARS)}", hit.record.id))
    return items


TOLD_TURNS = 3  # at most this many told memories become earlier turns of a first stage


def told_facts(hits: Sequence[Recalled], compiled: Compiled) -> tuple[str, ...]:
    """What the person told among the memories that made it into `compiled`, as
    statements (requests dropped): the most relevant TOLD_TURNS, then oldest first, so
    that a later correction is said last."""
    kept = {item.memory_id for item in compiled.kept if item.section == "memory"}
    told = [h.record for h in hits if h.record.id in kept and is_told(h.record.query)]
    chosen = sorted(told[:TOLD_TURNS], key=lambda r: r.timestamp)
    return tuple(cut(_statements(r.query), LINE_CHARS) for r in chosen)


def _statements(text: str) -> str:
    """What was told, without the requests around it ("Please remember it.")."""
    return " ".join(s for s in sentences(text) if is_told(s)) or text.strip()


class ContextCompiler:
    """Fits items to a budget by relevance, summarising what does not fit."""

    def __init__(self, budget: int, count_tokens: CountTokens,
                 summarise: Summarise | None = None) -> None:
        self.budget = budget
        self.count_tokens = count_tokens
        self.summarise = summarise

    async def compile(self, items: Sequence[Item]) -> Compiled:
        ordered = sorted(items, key=lambda i: -i.relevance)
        kept, overflow = await self._select(ordered, self.budget)
        if overflow and self.summarise is not None:
            # leave a quarter of the budget (and its heading) for the summary of the rest
            heading = await self.count_tokens(SECTIONS["summary"]) + 2
            reserve = max(MIN_SUMMARY_TOKENS, self.budget // 4) + heading
            kept, overflow = await self._select(ordered, self.budget - reserve)
            summary = await self._summary(kept, overflow)
            if summary:
                kept.append(Item(0.0, "summary", summary))
        text = render(kept)
        tokens = await self.count_tokens(text) if text else 0
        return Compiled(text=text, tokens=tokens, kept=kept, summarised=overflow)

    async def _select(self, ordered: Sequence[Item], budget: int
                      ) -> tuple[list[Item], list[Item]]:
        """The most relevant whole items that fit in `budget`, and the rest: once one does
        not fit, nothing less relevant jumps the queue."""
        kept: list[Item] = []
        for index, item in enumerate(ordered):
            if await self.count_tokens(render([*kept, item])) > budget:
                return kept, list(ordered[index:])
            kept.append(item)
        return kept, []

    async def _summary(self, kept: list[Item], overflow: list[Item]) -> str:
        room = self.budget - await self.count_tokens(render([*kept, Item(0.0, "summary", "")]))
        if room < MIN_SUMMARY_TOKENS or self.summarise is None:
            return ""
        notes = "\n".join(item.text for item in overflow)
        summary = await self.summarise(notes, room)
        return await self.fit(summary, room)

    async def fit(self, text: str, budget: int) -> str:
        """The longest run of whole sentences of `text` within `budget` tokens."""
        chosen: list[str] = []
        for sentence in sentences(text):
            if not re.search(r"[.!?][\"')\]]*$", sentence):
                break  # an unfinished sentence (the model stopped mid-way): leave it out
            if await self.count_tokens(" ".join([*chosen, sentence])) > budget:
                break
            chosen.append(sentence)
        return " ".join(chosen)


def render(items: Sequence[Item]) -> str:
    """The items grouped under their section headings, in a fixed order."""
    blocks = []
    for section, heading in SECTIONS.items():
        lines = [i.text for i in items if i.section == section]
        if lines:
            blocks.append("\n".join([heading, *lines]))
    return "\n\n".join(blocks)
