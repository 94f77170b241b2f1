"""The documents index on real Chroma and MiniLM: add, re-index, remove, search, read."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mirador.errors import ConfigError
from mirador.settings import Settings
from mirador.tools.docs import DocsIndex, chunk
from mirador.tools.registry import available_tools
from mirador.toolspec import ToolError

LEASE = ("The monthly rent is 1,180 euros, due on the 5th of each month.\n\n"
         "Pets: one cat or one small dog is allowed with a deposit of 300 euros.")
BIKE = "Bike notes. Tyre pressure: 4.5 bar front, 5 bar rear. The chain was replaced in March."


def write_pdf(path: Path, text: str) -> None:
    """A one-page PDF holding `text`, written by hand (pypdf only reads here)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "home").mkdir(parents=True)
    (docs / "home" / "lease.md").write_text(LEASE)
    (docs / "bike.txt").write_text(BIKE)
    write_pdf(docs / "garden.pdf", "The tomatoes are watered every Tuesday")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8 not text")
    return docs


def test_add_search_reindex_and_remove(folder: Path, settings: Settings) -> None:
    index = DocsIndex(settings)
    done = index.add(folder)
    assert (done.added, done.unchanged, done.removed) == (3, 0, 0)
    assert settings.home / "docs" / "chroma" in (settings.home / "docs").iterdir()
    [best] = index.search("Can I keep a cat?", limit=1)
    assert best.path.endswith("lease.md") and "cat" in best.text and best.similarity > 0.3
    assert index.search("When are the tomatoes watered?", limit=1)[0].path.endswith(".pdf")

    (folder / "bike.txt").write_text(BIKE.replace("March", "June"))
    (folder / "garden.pdf").unlink()
    again = DocsIndex(settings).add(folder)  # a new process's view, from the files on disk
    assert (again.added, again.unchanged, again.removed) == (1, 1, 1)
    assert "June" in index.search("When was the chain replaced?", limit=1)[0].text
    assert index.remove(folder) == 2
    assert index.search("cat") == [] and index.folders() == []


def test_read_file_stays_inside_indexed_folders(folder: Path, tmp_path: Path,
                                                settings: Settings) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the password")
    os.symlink(secret, folder / "escape.txt")
    index = DocsIndex(settings)
    index.add(folder)
    assert "1,180 euros" in index.read(str(folder / "home" / "lease.md"))
    for path in (secret, folder / "escape.txt", folder / ".." / "secret.txt"):
        with pytest.raises(ToolError, match="not inside an indexed folder"):
            index.read(str(path))
    assert not any("escape" in f for f in index.files())  # the symlink was not indexed


def test_the_tools_search_and_read(folder: Path, settings: Settings) -> None:
    tools = available_tools(settings)
    empty = asyncio.run(tools["search_docs"].call({"query": "rent"}))
    assert "mirador docs add" in empty.text
    DocsIndex(settings).add(folder)
    found = asyncio.run(tools["search_docs"].call({"query": "How much is the rent?"}))
    assert "1,180 euros" in found.text
    refused = tools["read_file"].call({"path": "/etc/passwd"})
    with pytest.raises(ToolError):
        asyncio.run(refused)


def test_adding_a_file_or_nothing_is_refused(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        DocsIndex(settings).add(tmp_path / "a.txt")
    with pytest.raises(ConfigError, match="is not indexed"):
        DocsIndex(settings).remove(tmp_path)


def test_chunks_overlap_and_cover_the_text() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(10))
    pieces = chunk(text, size=400, overlap=50)
    assert all(len(p) <= 400 for p in pieces) and len(pieces) > 5
    assert "Paragraph 9" in pieces[-1] and pieces[0].startswith("Paragraph 0")
