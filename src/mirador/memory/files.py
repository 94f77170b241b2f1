"""Checks on the memory store's files before Chroma opens them.

Chroma quietly turns an empty or foreign `chroma.sqlite3` into a new, empty
store, which would hide that every memory is gone. Opening refuses such a file
instead, names it, and leaves it exactly as it is.
"""

from __future__ import annotations

from pathlib import Path

from mirador.errors import MemoryStoreError

STORE_FILE = "chroma.sqlite3"
SQLITE_HEADER = b"SQLite format 3\x00"


def check_store_files(directory: Path) -> None:
    """Raise MemoryStoreError if the store's database exists but is empty or not SQLite."""
    path = directory / STORE_FILE
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # a new store
    except OSError as exc:
        raise MemoryStoreError(f"cannot read the memory store {path} ({exc.strerror}); check "
                               "its permissions") from None
    if head == SQLITE_HEADER:
        return
    what = "is empty (0 bytes)" if not head else "is not an SQLite database"
    raise MemoryStoreError(
        f"the memory store {path} {what}, so the memories it held cannot be read. It has "
        f"been left exactly as it is: restore it from a backup, or move it aside "
        f"(mv '{path}' '{path}.broken') and Mirador will start an empty store")
