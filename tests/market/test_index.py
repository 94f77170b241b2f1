"""The index: publish --index writes it; search reads it from a directory or over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.errors import MarketError
from mirador.market.index import read_index, search
from mirador.market.manifest import read_package_manifest
from mirador.market.publish import publish
from mirador.settings import Settings
from tests.market.conftest import StaticServer, write_package


def test_publish_indexes_and_search_matches_every_word(
        tmp_path: Path, publisher: Settings, base_sha: str, static_server: StaticServer) -> None:
    index_dir = static_server.directory
    publish(publisher, write_package(tmp_path / "a", base_sha), "ada", index_dir=index_dir)
    other = write_package(tmp_path / "b", base_sha, id="ledger", description="Bookkeeping "
                          "help for a small shop.", personas=[], chains=[
                              {"id": "books", "steps": ["quick"]}])
    publish(publisher, other, "ada", index_dir=index_dir)
    publish(publisher, other, "ada", index_dir=index_dir)  # again: replaced, not doubled
    for where in (str(index_dir), static_server.url):
        index = read_index(where)
        assert sorted(e.id for e in index.packages) == ["calm-coach", "ledger"]
        assert [e.id for e in search(index, "CALM planning")] == ["calm-coach"]
        assert [e.id for e in search(index, "shop ada")] == ["ledger"]
        assert search(index, "calm shop") == []
    entry = search(read_index(static_server.url), "ledger")[0]
    assert entry.location(static_server.url) == f"{static_server.url}/ledger-1.0.0.tar.gz"
    assert entry.location(str(index_dir)) == str(index_dir / "ledger-1.0.0.tar.gz")
    assert read_package_manifest(tmp_path / "b").id == "ledger"


def test_a_missing_or_broken_index_is_a_clear_error(tmp_path: Path,
                                                     static_server: StaticServer) -> None:
    with pytest.raises(MarketError, match="index.json"):
        read_index(str(tmp_path))
    with pytest.raises(MarketError, match="answered HTTP 404"):
        read_index(static_server.url)
    (static_server.directory / "index.json").write_text('{"packages": [{"id": "x"}]}')
    with pytest.raises(MarketError, match="not a valid index.json"):
        read_index(static_server.url)


def test_publish_refuses_a_manifest_listing_missing_files(
        tmp_path: Path, publisher: Settings, base_sha: str) -> None:
    package = write_package(tmp_path / "pkg", base_sha)
    (package / "chains" / "calm.yaml").unlink()
    with pytest.raises(MarketError, match="chains/calm.yaml, which are not in"):
        publish(publisher, package, "ada")
    assert not (package / "mirador.sig").exists()
