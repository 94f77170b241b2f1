"""What a memory is: one finished exchange, and a recalled one with its scores."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# The most text one memory keeps, per field (the query, the answer, each stage's answer).
# An import refuses longer fields, naming the line; a live answer is cut to fit (`bounded`).
MAX_FIELD_CHARS = 8_000
TRUNCATED = " [...]"

_PREFERENCE = re.compile(
    r"\b(i|we)\s*(?:'m|am|are|'re)?\s*(?:really\s+)?(prefer|like|love|hate|dislike|enjoy|"
    r"always|never|usually|allergic|vegetarian|vegan|can't|cannot|don't|do not|avoid)\b"
    r"|\b(my name is|call me|remember that)\b", re.IGNORECASE)


def is_preference(text: str) -> bool:
    """Whether the person states something standing about themselves ("I'm allergic to...")."""
    return bool(_PREFERENCE.search(text))


def cut(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` if it fits in `limit` characters; else its first whole sentences (or words)
    that fit, marked with " [...]"."""
    if len(text) <= limit:
        return text
    room = text[: limit - len(TRUNCATED)]
    end = max(room.rfind(". "), room.rfind("! "), room.rfind("? "), room.rfind("\n"))
    if end < limit // 2:
        end = room.rfind(" ")
    return (room[: end + 1] if end > 0 else room).rstrip() + TRUNCATED


@dataclass(frozen=True)
class MemoryRecord:
    """One remembered exchange: what was asked, what Mirador answered, and around it."""

    id: str
    query: str
    response: str
    namespace: str = "default"
    timestamp: float = field(default_factory=time.time)
    session_id: str = ""
    chain: str = ""
    answers: dict[str, str] = field(default_factory=dict)
    rating: int | None = None

    def __post_init__(self) -> None:
        # kept to the millisecond: a float's last digits do not always survive Chroma's
        # metadata, and a memory must read back exactly as it was stored
        object.__setattr__(self, "timestamp", round(float(self.timestamp), 3))

    @property
    def document(self) -> str:
        """The text whose meaning is embedded: the person's words, then Mirador's."""
        return f"{self.query}\n{self.response}".strip()

    @property
    def when(self) -> str:
        return iso(self.timestamp)

    def bounded(self) -> MemoryRecord:
        """This record with every text field cut to MAX_FIELD_CHARS (see `cut`)."""
        return replace(self, query=cut(self.query), response=cut(self.response),
                       answers={k: cut(v) for k, v in self.answers.items()})

    def with_rating(self, rating: int | None) -> MemoryRecord:
        return replace(self, rating=rating)

    def to_metadata(self) -> dict[str, str | int | float]:
        """Chroma metadata (flat scalars only; absent values are left out)."""
        meta: dict[str, str | int | float] = {
            "namespace": self.namespace, "query": self.query, "response": self.response,
            "ts": float(self.timestamp), "session_id": self.session_id, "chain": self.chain,
            "answers": json.dumps(self.answers, ensure_ascii=False),
            "preference": is_preference(self.query),
            "rating": int(self.rating or 0)}  # 0: not rated (updates merge, so never omit it)
        return meta

    @classmethod
    def from_metadata(cls, memory_id: str, meta: dict[str, Any]) -> MemoryRecord:
        rating = meta.get("rating")
        return cls(id=memory_id, query=str(meta.get("query", "")),
                   response=str(meta.get("response", "")),
                   namespace=str(meta.get("namespace", "default")),
                   timestamp=float(meta.get("ts", 0.0)),
                   session_id=str(meta.get("session_id", "")), chain=str(meta.get("chain", "")),
                   answers=json.loads(str(meta.get("answers") or "{}")),
                   rating=int(rating) if rating else None)

    def to_json(self) -> dict[str, Any]:
        """The export form (one JSONL line)."""
        data: dict[str, Any] = {"id": self.id, "namespace": self.namespace, "query": self.query,
                                "response": self.response, "timestamp": self.when}
        if self.session_id:
            data["session_id"] = self.session_id
        if self.chain:
            data["chain"] = self.chain
        if self.answers:
            data["answers"] = self.answers
        if self.rating is not None:
            data["rating"] = self.rating
        return data


@dataclass(frozen=True)
class Recalled:
    """A memory found for a query: `score` ranks it; the parts say why."""

    record: MemoryRecord
    score: float
    similarity: float
    decay: float
    superseded: float = 0.0
    lexical: float = 0.0  # BM25 score; 0 when no query word matched

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "score": round(self.score, 4),
                "similarity": round(self.similarity, 4), "decay": round(self.decay, 4),
                "superseded": round(self.superseded, 4), "lexical": round(self.lexical, 4)}


def iso(timestamp: float) -> str:
    """An ISO-8601 UTC time with a Z, to the second."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Epoch seconds from ISO-8601 (a time without a zone is taken as UTC)."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
