"""The documents index: folders the person adds, chunked, embedded and kept in Chroma.

`mirador docs add PATH` records a folder and indexes its text, Markdown and PDF
files (PDF through `pypdf`); adding it again re-indexes only files whose
content changed and drops files that are gone. Chunks are embedded with the
configured embedder (MiniLM by default) and kept in a Chroma collection under
the home (`docs/chroma`), beside a small JSON record of folders and file hashes
(`docs/index.json`). `search` finds the chunks nearest a query; `read` returns
a file only when its real path lies inside an indexed folder.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirador.errors import ConfigError, MemoryStoreError
from mirador.toolspec import ToolError

if TYPE_CHECKING:
    from mirador.embeddings import Embedder
    from mirador.settings import Settings

SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".pdf")
CHUNK_CHARS = 800
OVERLAP_CHARS = 120
MAX_FILE_BYTES = 20_000_000
READ_LIMIT = 20_000  # characters of a file `read` returns
_COLLECTION = "mirador-docs"


@dataclass(frozen=True)
class Hit:
    """A chunk found for a query: where it is from and how near it is (cosine)."""

    path: str
    text: str
    similarity: float


@dataclass(frozen=True)
class Indexed:
    """What one `add` did."""

    folder: str
    added: int  # files (re)indexed
    unchanged: int
    removed: int
    chunks: int


def docs_dir(settings: Settings) -> Path:
    return settings.home / "docs"


class DocsIndex:
    """The indexed folders and their chunks (blocking; thread-safe)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self._dir = docs_dir(settings)
        self._settings = settings
        self._embedder = embedder
        self._collection: Any = None
        self._lock = threading.RLock()

    # -- the record of folders and files -------------------------------------------------

    def _record(self) -> dict[str, Any]:
        path = self._dir / "index.json"
        if not path.exists():
            return {"folders": [], "files": {}}
        try:
            data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path} ({exc}); remove it and add the folders "
                              "again with 'mirador docs add'") from None
        return data

    def _save(self, record: dict[str, Any]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        temporary = self._dir / "index.json.tmp"
        temporary.write_text(json.dumps(record, indent=1), "utf-8")
        temporary.replace(self._dir / "index.json")

    def folders(self) -> list[str]:
        """The indexed folders (real paths)."""
        return list(self._record()["folders"])

    def files(self) -> dict[str, dict[str, Any]]:
        """Indexed file -> its hash and chunk count."""
        return dict(self._record()["files"])

    # -- indexing ------------------------------------------------------------------------

    def add(self, folder: Path) -> Indexed:
        """Index `folder` (again): changed files re-embedded, vanished ones dropped."""
        root = folder.expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"{folder} is not a folder; give a directory to index")
        with self._lock:
            record = self._record()
            if str(root) not in record["folders"]:
                record["folders"].append(str(root))
            result = self._sync(root, record)
            self._save(record)
        return result

    def remove(self, folder: Path) -> int:
        """Forget `folder` and its chunks; how many files were dropped."""
        root = str(folder.expanduser().resolve())
        with self._lock:
            record = self._record()
            if root not in record["folders"]:
                raise ConfigError(f"{root} is not indexed (indexed: "
                                  f"{', '.join(record['folders']) or 'none'})")
            record["folders"].remove(root)
            gone = [p for p in record["files"] if _inside(Path(p), Path(root))
                    and not any(_inside(Path(p), Path(f)) for f in record["folders"])]
            for path in gone:
                self._drop(path, record)
            self._save(record)
        return len(gone)

    def _sync(self, root: Path, record: dict[str, Any]) -> Indexed:
        seen, added, unchanged, chunks = set(), 0, 0, 0
        for path in _documents(root):
            seen.add(str(path))
            digest = _digest(path)
            known = record["files"].get(str(path))
            if known and known["sha"] == digest:
                unchanged += 1
                continue
            count = self._index_file(path, digest, record)
            added, chunks = added + 1, chunks + count
        stale = [p for p in record["files"] if _inside(Path(p), root) and p not in seen]
        for path in stale:
            self._drop(path, record)
        return Indexed(str(root), added, unchanged, len(stale), chunks)

    def _index_file(self, path: Path, digest: str, record: dict[str, Any]) -> int:
        self._drop(str(path), record)
        pieces = chunk(read_text(path))
        if pieces:
            vectors = self.embedder.embed(pieces)
            ids = [f"{digest[:16]}-{i}" for i in range(len(pieces))]
            self._call("add", ids=ids, documents=pieces, embeddings=[list(map(float, v))
                                                                     for v in vectors],
                       metadatas=[{"path": str(path), "index": i} for i in range(len(pieces))])
        record["files"][str(path)] = {"sha": digest, "chunks": len(pieces)}
        return len(pieces)

    def _drop(self, path: str, record: dict[str, Any]) -> None:
        if record["files"].pop(path, None) is not None:
            self._call("delete", where={"path": path})

    # -- searching and reading -----------------------------------------------------------

    def search(self, query: str, limit: int = 4) -> list[Hit]:
        """The chunks nearest `query` in meaning, nearest first."""
        if not self.files():
            return []
        vector = [float(x) for x in self.embedder.embed([query])[0]]
        found = self._call("query", query_embeddings=[vector], n_results=limit,
                           include=["documents", "metadatas", "distances"])
        return [Hit(path=meta["path"], text=doc, similarity=round(1.0 - dist, 4))
                for doc, meta, dist in zip(found["documents"][0], found["metadatas"][0],
                                           found["distances"][0], strict=True)]

    def read(self, path: str) -> str:
        """The text of `path` when its real path lies in an indexed folder, else a ToolError."""
        real = Path(path).expanduser().resolve()
        folders = [Path(f) for f in self.folders()]
        if not any(_inside(real, folder) for folder in folders):
            raise ToolError(f"{path} is not inside an indexed folder (indexed: "
                            f"{', '.join(map(str, folders)) or 'none'}); only those can be read")
        if not real.is_file():
            raise ToolError(f"{path} is not a file")
        text = read_text(real)
        return text if len(text) <= READ_LIMIT else text[:READ_LIMIT] + "\n[... cut]"

    # -- Chroma ---------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from mirador.embeddings import load_embedder

            self._embedder = load_embedder(self._settings, start=False)
        return self._embedder

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._open(), method)(**kwargs)
        except (ConfigError, ToolError):
            raise
        except Exception as exc:  # chromadb raises many types; translated at the edge
            raise MemoryStoreError(f"the documents index failed ({type(exc).__name__}: {exc}); "
                                   f"remove {self._dir} and add the folders again") from exc

    def _open(self) -> Any:
        with self._lock:
            if self._collection is None:
                import chromadb
                from chromadb.config import Settings as ChromaSettings

                path = self._dir / "chroma"
                path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(
                    path=str(path), settings=ChromaSettings(anonymized_telemetry=False))
                self._collection = client.get_or_create_collection(
                    _COLLECTION, metadata={"hnsw:space": "cosine"})
            return self._collection


def chunk(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """`text` in pieces of about `size` characters, cut at paragraph or line ends where
    possible, each sharing `overlap` characters with the one before."""
    text = text.strip()
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = max(text.rfind("\n\n", start, end), text.rfind("\n", start, end),
                      text.rfind(". ", start, end))
            end = cut + 1 if cut > start + size // 2 else end
        pieces.append(text[start:end].strip())
        start = end if end >= len(text) else max(end - overlap, start + 1)
    return [p for p in pieces if p]


def read_text(path: Path) -> str:
    """A document's text: PDFs through pypdf, others as UTF-8."""
    if path.suffix.lower() == ".pdf":
        return _pdf_text(path)
    return path.read_text("utf-8", errors="replace")


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        return "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    except (PdfReadError, ValueError, OSError) as exc:
        raise ToolError(f"cannot read the PDF {path} ({exc})") from None


def _documents(root: Path) -> Iterator[Path]:
    """Files under `root` with a known suffix whose real path stays inside it."""
    for path in sorted(root.rglob("*")):
        hidden = any(p.startswith(".") for p in path.relative_to(root).parts)
        if path.suffix.lower() not in SUFFIXES or hidden:
            continue
        real = path.resolve()
        if real.is_file() and _inside(real, root) and real.stat().st_size <= MAX_FILE_BYTES:
            yield real


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
