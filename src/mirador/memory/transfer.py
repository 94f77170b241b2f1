"""Moving memories: JSONL export, and an import that checks every line before writing any.

Each line is one memory: `id`, `namespace`, `query`, `response`, an optional
ISO-8601 `timestamp`, and the optional `session_id`, `chain`, `answers` and
`rating` that exports carry. Ids are kept, so memories move between machines
(and tests) unchanged. A bad file is refused whole, with the line named, so
nothing already stored is touched. A memory's size is bounded: a text field over
`MAX_FIELD_CHARS` characters, or a line over `MAX_LINE_CHARS`, is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mirador.errors import MemoryImportError
from mirador.memory.records import MAX_FIELD_CHARS, MemoryRecord, parse_time

REQUIRED = ("id", "namespace", "query", "response")
MAX_LINE_CHARS = 4 * MAX_FIELD_CHARS + 8_000  # query, response and stage answers, with room


class MemoryLine(BaseModel):
    """One line of an import file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    namespace: str = Field(min_length=1, max_length=200)
    query: str = Field(min_length=1, max_length=MAX_FIELD_CHARS)
    response: str = Field(max_length=MAX_FIELD_CHARS)
    timestamp: str | None = None
    session_id: str = Field(default="", max_length=200)
    chain: str = Field(default="", max_length=200)
    answers: dict[str, str] = {}
    rating: int | None = Field(default=None, ge=1, le=5)

    @field_validator("query")
    @classmethod
    def _said_something(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank; a memory needs what the person said")
        return value

    @field_validator("answers")
    @classmethod
    def _bounded(cls, value: dict[str, str]) -> dict[str, str]:
        for stage, text in value.items():
            if len(text) > MAX_FIELD_CHARS:
                raise ValueError(f"the answer of stage '{stage}' is {len(text):,} characters; "
                                 f"at most {MAX_FIELD_CHARS:,} are kept per field")
        return value

    @field_validator("timestamp")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_time(value)
            except ValueError:
                raise ValueError(f"timestamp '{value}' is not ISO-8601 "
                                 "(e.g. 2026-06-04T12:00:00Z)") from None
        return value

    def record(self, now: float) -> MemoryRecord:
        return MemoryRecord(id=self.id, namespace=self.namespace, query=self.query,
                            response=self.response,
                            timestamp=parse_time(self.timestamp) if self.timestamp else now,
                            session_id=self.session_id, chain=self.chain,
                            answers=dict(self.answers), rating=self.rating)


def write_jsonl(records: Iterable[MemoryRecord], handle: IO[str]) -> int:
    """Write one JSON object per line; returns how many."""
    count = 0
    for record in records:
        handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        count += 1
    return count


def read_jsonl(path: Path, existing: set[str] = frozenset(),  # type: ignore[assignment]
               replace: bool = False) -> list[MemoryRecord]:
    """Every memory in `path`, checked; raises MemoryImportError naming the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MemoryImportError(f"cannot read {path} ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise MemoryImportError(f"{path} is not UTF-8 text; export it again as JSONL") from None
    now = time.time()
    seen: dict[str, int] = {}
    records = []
    for number, line in _lines(text):
        record = _parse(path, number, line).record(now)
        if record.id in seen:
            raise MemoryImportError(f"{path}:{number}: id '{record.id}' was already used on "
                                    f"line {seen[record.id]}; ids must be unique")
        if record.id in existing and not replace:
            raise MemoryImportError(f"{path}:{number}: id '{record.id}' is already stored; "
                                    "forget it first, or import with --replace")
        seen[record.id] = number
        records.append(record)
    return records


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _parse(path: Path, number: int, line: str) -> MemoryLine:
    where = f"{path}:{number}"
    if len(line) > MAX_LINE_CHARS:
        raise MemoryImportError(f"{where}: the line is {len(line):,} characters; a memory may "
                                f"be at most {MAX_LINE_CHARS:,} (each text field at most "
                                f"{MAX_FIELD_CHARS:,}); shorten or split it") from None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise MemoryImportError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                "each line must be one JSON object") from None
    if not isinstance(data, dict):
        raise MemoryImportError(f"{where}: expected a JSON object with "
                                f"{', '.join(REQUIRED)}") from None
    missing = [f for f in REQUIRED if f not in data]
    if missing:
        raise MemoryImportError(f"{where}: missing field{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)}; each line needs "
                                f"{', '.join(REQUIRED)}")
    try:
        return MemoryLine.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "line"
        message = first["msg"]
        if first["type"] == "string_too_long":
            message += f" (a memory keeps at most {MAX_FIELD_CHARS:,} characters per field)"
        raise MemoryImportError(f"{where}: field '{field}': {message}") from None
