"""Embedding every memory again, when `memory.embedder` names another model.

Vectors from two models cannot be compared: a question embedded by one model, searched
among memories embedded by another, finds noise (or, with another dimension, an error).
So the store checks, once per namespace, that its embedder still gives a stored memory
the vector it was stored with (`same_model`), and refuses to search or write otherwise;
`mirador memory reindex` embeds every memory of a namespace again with the embedder now
configured.

Reindexing drops the namespace's collections and writes them anew, so the records are
first written to a journal (memory/.reindex-<namespace digest>.jsonl, each record as
Chroma keeps it). Opening the store finishes a reindex a crash interrupted, from its
journal; the journal is overwritten with zeros before it is deleted, since it holds
the memories' text.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mirador.memory.records import MemoryRecord

PREFIX = ".reindex-"
SAME_MODEL = 0.99  # cosine between a text's stored vector and its vector now, at least
# (the numpy and sentence-transformers runs of one model agree to ~1e-6; two models'
# vectors of one text are unrelated, near 0)


def same_model(stored: np.ndarray, now: np.ndarray) -> bool:
    """Whether `now` (a text embedded by the configured model) is the vector `stored`
    was made by the same model."""
    if stored.shape != now.shape:
        return False
    return float(np.dot(stored.astype(np.float64), now.astype(np.float64))) >= SAME_MODEL


def journal_path(directory: Path, namespace: str) -> Path:
    digest = hashlib.sha1(namespace.encode()).hexdigest()[:12]
    return directory / f"{PREFIX}{digest}.jsonl"


def write_journal(directory: Path, namespace: str, records: Sequence[MemoryRecord]) -> Path:
    """Write the namespace's records durably before anything is dropped."""
    path = journal_path(directory, namespace)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"namespace": namespace}) + "\n")
        for record in records:
            handle.write(json.dumps({"id": record.id, "meta": record.to_metadata()},
                                    ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)  # a journal is whole or absent
    return path


def pending(directory: Path) -> Iterator[tuple[str, list[MemoryRecord]]]:
    """Each interrupted reindex: its namespace and the records it was writing."""
    for partial in directory.glob(f"{PREFIX}*.partial"):  # never begun: nothing was dropped
        remove(partial)
    for path in sorted(directory.glob(f"{PREFIX}*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        namespace = str(json.loads(lines[0])["namespace"])
        records = [MemoryRecord.from_metadata(row["id"], row["meta"])
                   for row in map(json.loads, lines[1:])]
        yield namespace, records


def remove(path: Path) -> None:
    """Delete a journal, overwritten with zeros first (it holds the memories' text)."""
    if not path.exists():
        return
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.write(b"\0" * size)
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
