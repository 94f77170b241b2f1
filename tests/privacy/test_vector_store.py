"""The vector store's own files after a forget: Chroma's database, its write-ahead queue
and index segments must not hold the text either.

The memory store's erase (MemoryStore.forget / forget_all) purges Chroma's
embeddings_queue, compacts its database and zeroes freed index space.
"""

from __future__ import annotations

from pathlib import Path

from tests.privacy.conftest import MARKER, files_with, ids, mirador


def test_forget_leaves_no_trace_in_any_file_under_the_home(home: Path) -> None:
    secret_id, _ = ids(home)
    assert mirador(home, "memory", "forget", secret_id).returncode == 0
    assert files_with(home, MARKER) == []
    assert mirador(home, "memory", "ls").returncode == 0  # a restart
    assert files_with(home, MARKER) == []


def test_forget_all_leaves_no_trace_in_any_file_under_the_home(home: Path) -> None:
    assert mirador(home, "memory", "forget", "--all", "--yes").returncode == 0
    assert files_with(home, MARKER) == [] and files_with(home, "grey cat") == []
