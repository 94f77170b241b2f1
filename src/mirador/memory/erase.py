"""Erasing forgotten memories from the files ChromaDB keeps, not only from its answers.

Chroma deletes a record from its tables, but its text lingers on disk: the write-ahead
queue (`embeddings_queue`) keeps every upsert until all segments have consumed it, the
full-text index keeps deleted terms in older segments, and SQLite keeps freed pages as
they were. After a forget, `purge_chroma`:

1. deletes the queue rows of every record that a later queued delete removed (the
   delete itself stays, so a segment replaying the queue still ends without the record);
2. merges Chroma's full-text index (`optimize`), dropping deleted terms;
3. vacuums the database, so no free page keeps the text.

4. zeroes the unused capacity of each vector segment's files (`scrub_segments`): the
   HNSW library writes its whole allocation, and memory it never initialised holds
   whatever the process freed before, forgotten text included. The store also does
   this when it closes, after Chroma's last write.

The steps are idempotent: a forget leaves a marker file until they have run, and
opening the store finishes them after a crash (`pending`).
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from mirador.errors import MemoryStoreError

MARKER = ".erase-pending"
DELETE = 3  # Chroma's operation code for a delete in embeddings_queue
_PURGE = f"""
DELETE FROM embeddings_queue
WHERE operation != {DELETE}
  AND id IN (SELECT id FROM embeddings_queue WHERE operation = {DELETE})
  AND EXISTS (SELECT 1 FROM embeddings_queue AS later
              WHERE later.id = embeddings_queue.id AND later.topic = embeddings_queue.topic
                AND later.operation = {DELETE} AND later.seq_id > embeddings_queue.seq_id)
"""


def mark(directory: Path) -> None:
    """Note that an erase has begun (before anything is deleted)."""
    (directory / MARKER).touch()


def pending(directory: Path) -> bool:
    return (directory / MARKER).exists()


def done(directory: Path) -> None:
    (directory / MARKER).unlink(missing_ok=True)


def purge_chroma(chroma_dir: Path) -> int:
    """Erase deleted records' traces from Chroma's database; returns queue rows removed."""
    path = chroma_dir / "chroma.sqlite3"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    except sqlite3.Error as exc:
        raise MemoryStoreError(f"cannot open {path} to erase forgotten memories ({exc}); "
                               "close other Mirador processes and forget again") from None
    try:
        removed = _purge(db)
    except sqlite3.Error as exc:
        raise MemoryStoreError(f"erasing forgotten memories from {path} failed ({exc}); "
                               "close other Mirador processes and forget again") from None
    finally:
        db.close()
    scrub_segments(chroma_dir)
    return removed


def scrub_segments(chroma_dir: Path) -> int:
    """Zero what lies past the used elements in every HNSW segment's files; returns how
    many files changed. The header says how many elements are in use and their size."""
    changed = 0
    for header in chroma_dir.glob("*/header.bin"):
        used = _used_elements(header)
        if used is None:
            continue
        count, size = used
        changed += _zero_tail(header.with_name("data_level0.bin"), count * size)
        changed += _zero_tail(header.with_name("length.bin"), count * 4)
    return changed


def _used_elements(header: Path) -> tuple[int, int] | None:
    """(elements in use, bytes per element) from hnswlib's header (after a 4-byte version:
    offset_level0, max_elements, cur_element_count, size_data_per_element)."""
    raw = header.read_bytes()
    if len(raw) < 36:
        return None
    _, _, count, size = struct.unpack_from("<4Q", raw, 4)
    return int(count), int(size)


def _zero_tail(path: Path, keep: int) -> int:
    if not path.exists() or path.stat().st_size <= keep:
        return 0
    with path.open("r+b") as handle:
        handle.seek(keep)
        tail = handle.read()
        if not tail.strip(b"\0"):
            return 0
        handle.seek(keep)
        handle.write(bytes(len(tail)))
    return 1


def _purge(db: sqlite3.Connection) -> int:
    db.execute("PRAGMA secure_delete = ON")
    removed = db.execute(_PURGE).rowcount
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "embedding_fulltext_search" in tables:
        db.execute("INSERT INTO embedding_fulltext_search (embedding_fulltext_search) "
                   "VALUES ('optimize')")
    db.execute("VACUUM")
    return int(removed)
