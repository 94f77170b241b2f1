"""Export and import: ids kept, every line checked first, a bad file named and refused whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mirador.errors import MemoryImportError
from mirador.memory.records import MAX_FIELD_CHARS
from mirador.memory.store import MemoryStore
from mirador.memory.transfer import MAX_LINE_CHARS, read_jsonl, write_jsonl
from tests.memory.conftest import rec

GOOD = {"id": "m1", "namespace": "personal", "query": "I'm allergic to peanuts.",
        "response": "Noted.", "timestamp": "2026-06-04T12:00:00Z"}


def _file(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "memories.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_export_then_import_round_trips_with_ids(store: MemoryStore, tmp_path: Path) -> None:
    store.add([rec("a", "I play guitar.", rating=5, session_id="s1", chain="quick",
                   answers={"quick_response": "Nice."}),
               rec("b", "We use Postgres.", namespace="work")])
    buffer = io.StringIO()
    assert write_jsonl(store.records(), buffer) == 2
    exported = _file(tmp_path, *buffer.getvalue().splitlines())
    originals = list(store.records())
    store.forget_all()
    store.add(read_jsonl(exported))
    again = list(store.records())
    assert [r.id for r in again] == ["a", "b"]
    assert [(r.query, r.namespace, r.rating, r.answers) for r in again] == \
        [(r.query, r.namespace, r.rating, r.answers) for r in originals]
    assert abs(again[0].timestamp - originals[0].timestamp) < 1.0


def test_timestamp_is_optional_and_iso(tmp_path: Path) -> None:
    minimal = {k: v for k, v in GOOD.items() if k != "timestamp"}
    [record] = read_jsonl(_file(tmp_path, minimal))
    assert record.id == "m1" and record.timestamp > 1.7e9
    [dated] = read_jsonl(_file(tmp_path, GOOD))
    assert dated.when == "2026-06-04T12:00:00Z"


@pytest.mark.parametrize(("lines", "message"), [
    ([GOOD, "{not json"], r"memories.jsonl:2: not valid JSON"),
    ([GOOD, {"id": "m2", "namespace": "x", "query": "q"}], r":2: missing field 'response'"),
    ([{"id": "m2"}], r":1: missing fields 'namespace', 'query', 'response'"),
    ([GOOD, {**GOOD, "query": "again"}], r":2: id 'm1' was already used on line 1"),
    ([{**GOOD, "timestamp": "last tuesday"}], r":1: field 'timestamp'.*ISO-8601"),
    ([{**GOOD, "colour": "blue"}], r":1: field 'colour'"),
    ([{**GOOD, "rating": 9}], r":1: field 'rating'"),
    ([GOOD, "[1, 2]"], r":2: expected a JSON object"),
    ([{**GOOD, "query": "   "}], r":1: field 'query'.*blank"),
    ([GOOD, {**GOOD, "id": "m2", "response": "x" * (MAX_FIELD_CHARS + 1)}],
     r":2: field 'response'.*at most 8,000 characters per field"),
    ([{**GOOD, "answers": {"quick": "y" * (MAX_FIELD_CHARS + 1)}}],
     r":1: field 'answers'.*stage 'quick'"),
    ([GOOD, GOOD | {"id": "m2", "chain": "z" * MAX_LINE_CHARS}],
     r":2: the line is [\d,]+ characters; a memory may be at most"),
])
def test_bad_lines_are_named(tmp_path: Path, lines: list[object], message: str) -> None:
    with pytest.raises(MemoryImportError, match=message):
        read_jsonl(_file(tmp_path, *lines))


def test_a_bad_file_loses_nothing_already_stored(store: MemoryStore, tmp_path: Path) -> None:
    store.add([rec("keep", "My daughter is called Ana.")])
    bad = _file(tmp_path, {**GOOD, "id": "new1"}, {**GOOD, "id": "keep"})
    with pytest.raises(MemoryImportError, match=r":2: id 'keep' is already stored.*--replace"):
        read_jsonl(bad, {r.id for r in store.records()})
    assert [r.id for r in store.records()] == ["keep"]
    assert store.get("keep").query == "My daughter is called Ana."  # type: ignore[union-attr]
    replaced = read_jsonl(bad, {"keep"}, replace=True)
    assert [r.id for r in replaced] == ["new1", "keep"]


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MemoryImportError, match="cannot read"):
        read_jsonl(tmp_path / "absent.jsonl")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MemoryImportError, match="not UTF-8"):
        read_jsonl(binary)
