"""The market index: a static `index.json` in a directory or behind an HTTP URL.

`mirador publish --index DIR` puts the package's archive in DIR and its entry in
DIR/index.json; any static file server (or the directory itself) is then an index.
`mirador search-market QUERY --index DIR|URL` lists the entries whose id, author or
description hold every word of the query.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, ValidationError

from mirador.errors import MarketError
from mirador.market.archive import is_url
from mirador.market.manifest import PackageManifest

INDEX_NAME = "index.json"


class IndexEntry(BaseModel):
    """One package in an index."""

    model_config = ConfigDict(extra="forbid")

    id: str
    version: str
    author: str
    licence: str
    description: str = ""
    base_model: str
    archive: str  # relative to the index, or a URL

    def location(self, index: str) -> str:
        """Where to install this entry from: a URL or a path."""
        if is_url(self.archive) or Path(self.archive).is_absolute():
            return self.archive
        if is_url(index):
            return urljoin(index.rstrip("/") + "/", self.archive)
        return str(Path(index).expanduser() / self.archive)


class Index(BaseModel):
    model_config = ConfigDict(extra="forbid")

    packages: list[IndexEntry] = []


def read_index(index: str) -> Index:
    """The index at `index` (a directory or URL holding index.json)."""
    text = _fetch(index)
    try:
        return Index.model_validate_json(text)
    except ValidationError as exc:
        raise MarketError(f"the index at {index} is not a valid {INDEX_NAME}: "
                          f"{exc.errors()[0]['msg']}") from None


def _fetch(index: str) -> str:
    if is_url(index):
        import httpx

        url = urljoin(index.rstrip("/") + "/", INDEX_NAME)
        try:
            response = httpx.get(url, timeout=30.0, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise MarketError(f"cannot read the index {url}: {exc}") from None
        if response.status_code != 200:
            raise MarketError(f"the index {url} answered HTTP {response.status_code}")
        return response.text
    path = Path(index).expanduser() / INDEX_NAME
    if not path.is_file():
        raise MarketError(f"{path} does not exist; an index is a directory (or URL) holding "
                          f"{INDEX_NAME}, written by 'mirador publish --index DIR'")
    return path.read_text(encoding="utf-8")


def search(index: Index, query: str) -> list[IndexEntry]:
    """Entries whose id, author or description hold every word of `query`."""
    words = query.lower().split()
    return [e for e in index.packages
            if all(w in f"{e.id} {e.author} {e.description}".lower() for w in words)]


def add_to_index(directory: Path, manifest: PackageManifest, archive_name: str) -> Path:
    """Add (or replace) the package's entry in `directory/index.json`."""
    path = directory / INDEX_NAME
    current = Index.model_validate(json.loads(path.read_text("utf-8"))) if path.is_file() \
        else Index()
    entry = IndexEntry(id=manifest.id, version=manifest.version, author=manifest.author,
                       licence=manifest.licence, description=manifest.description,
                       base_model=manifest.base_model.id, archive=archive_name)
    packages = [p for p in current.packages if p.id != manifest.id] + [entry]
    path.write_text(Index(packages=packages).model_dump_json(indent=1), encoding="utf-8")
    return path
