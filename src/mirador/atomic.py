"""Writing a file whole or not at all: a sibling temporary file, then an atomic rename."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str, suffix: str = ".partial") -> None:
    """Write `text` to `path` so a reader (or a kill mid-write) sees the old file or the
    new one, never half of one; the temporary file is `path` + `suffix`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + suffix)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """`data` as indented, key-sorted JSON, written atomically."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))
