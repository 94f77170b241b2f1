"""What a GGUF file says about itself, read from its header without loading it.

Only the header is parsed (metadata and tensor descriptions); arrays keep
their length, not their items, so even a 262k-token vocabulary is skipped in
a fraction of a second. This is what `mirador models check` validates with
and what the memory budget estimates from, before llama.cpp is involved.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mirador.errors import ModelFileError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF value types: fixed-size scalars by struct format, then string (8) and array (9).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    ggml_type: int


@dataclass(frozen=True)
class GGUFInfo:
    """A GGUF file's header: scalar metadata, array lengths, tensors and where data starts."""

    path: Path
    metadata: Mapping[str, Any]
    array_lengths: Mapping[str, int]
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int
    _by_name: Mapping[str, TensorInfo] = field(default_factory=dict, repr=False)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def general_type(self) -> str:
        """'model' for a model, 'adapter' for a LoRA (older files leave it out)."""
        return str(self.metadata.get("general.type", "model"))

    @property
    def tensor_bytes(self) -> int:
        """Bytes of tensor data: what the weights take in memory once loaded."""
        return max(self.file_size - self.data_offset, 0)

    def arch(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped value, e.g. arch('block_count') for 'llama.block_count'."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def tensor(self, name: str) -> TensorInfo | None:
        return self._by_name.get(name)


def read_gguf_info(path: Path) -> GGUFInfo:
    """The header of the GGUF at `path`; a clear ModelFileError if it is not one."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist; fix the 'path' in the manifest or put "
                             "the GGUF file there") from None
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror}); fix the path in the "
                             "manifest or put the file there") from None
    return _read_cached(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _read_cached(path: Path, size: int, mtime_ns: int) -> GGUFInfo:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                                   access=mmap.ACCESS_READ) as view:
            return _parse(path, view, size)
    except (struct.error, IndexError, UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{path} is not a complete GGUF file (its header is truncated or "
                             "corrupt); download or write it again") from None
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror})") from None


class _Cursor:
    def __init__(self, view: mmap.mmap) -> None:
        self.view = view
        self.pos = 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.view, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.take("<Q")
        text = bytes(self.view[self.pos:self.pos + length]).decode("utf-8")
        if len(text.encode("utf-8")) != length:
            raise ValueError("string runs past the end of the file")
        self.pos += length
        return text

    def skip_strings(self, count: int) -> None:
        view, pos = self.view, self.pos
        for _ in range(count):
            pos += 8 + struct.unpack_from("<Q", view, pos)[0]
        if pos > len(view):
            raise ValueError("array runs past the end of the file")
        self.pos = pos


def _parse(path: Path, view: mmap.mmap, size: int) -> GGUFInfo:
    if view[:4] != MAGIC:
        raise ModelFileError(f"{path} is not a GGUF file (it does not start with 'GGUF'); it "
                             "may be corrupt or another format")
    cur = _Cursor(view)
    cur.pos = 4
    cur.take("<I")  # version
    n_tensors, n_kv = cur.take("<Q"), cur.take("<Q")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string()
        kind = cur.take("<I")
        if kind == _ARRAY:
            lengths[key] = _skip_array(cur)
        else:
            metadata[key] = _value(cur, kind)
    tensors = tuple(_tensor(cur) for _ in range(n_tensors))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_offset = -(-cur.pos // alignment) * alignment
    return GGUFInfo(path=path, metadata=metadata, array_lengths=lengths, tensors=tensors,
                    data_offset=data_offset, file_size=size,
                    _by_name={t.name: t for t in tensors})


def _value(cur: _Cursor, kind: int) -> Any:
    if kind == _STRING:
        return cur.string()
    if kind not in _SCALARS:
        raise ValueError(f"unknown GGUF value type {kind}")
    return cur.take(_SCALARS[kind])


def _skip_array(cur: _Cursor) -> int:
    kind, count = cur.take("<I"), cur.take("<Q")
    if kind == _STRING:
        cur.skip_strings(count)
    elif kind in _SCALARS:
        cur.pos += struct.calcsize(_SCALARS[kind]) * count
    else:
        for _ in range(count):  # nested arrays are rare; walk them one by one
            _skip_array(cur) if kind == _ARRAY else _value(cur, kind)
    return int(count)


def _tensor(cur: _Cursor) -> TensorInfo:
    name = cur.string()
    dims = cur.take("<I")
    shape = tuple(cur.take("<Q") for _ in range(dims))
    ggml_type = cur.take("<I")
    cur.take("<Q")  # offset within the data section
    return TensorInfo(name=name, shape=shape, ggml_type=ggml_type)
