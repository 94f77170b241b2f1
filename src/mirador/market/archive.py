"""Packages as `.tar.gz` files: written by publish, fetched by URL and unpacked safely.

Unpacking takes regular files and directories only, each inside the target (no
absolute paths, no `..`, no links or devices), within a size limit, so an archive
cannot write outside the staging directory it is unpacked into.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from mirador.errors import MarketError, PackageRefusedError

MAX_BYTES = 4 << 30  # unpacked or downloaded: a package larger than this is refused
_CHUNK = 1 << 20


def pack(directory: Path, out: Path) -> Path:
    """`directory`'s files in a gzipped tar at `out`, under the directory's name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return out


def unpack(archive_path: Path, target: Path) -> Path:
    """Unpack `archive_path` into `target` and return the package directory inside it."""
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            members = archive.getmembers()
            _check_members(members)
            archive.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PackageRefusedError(f"{archive_path.name} is not a readable .tar.gz package "
                                  f"({exc}); nothing installed") from None
    return target


def _check_members(members: list[tarfile.TarInfo]) -> None:
    total = 0
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise PackageRefusedError(f"the archive holds '{member.name}', a path outside the "
                                      "package; nothing installed")
        if not (member.isfile() or member.isdir()):
            raise PackageRefusedError(f"the archive holds '{member.name}', which is a link or "
                                      "a device, not a file; nothing installed")
        total += member.size
    if total > MAX_BYTES:
        raise PackageRefusedError(f"the archive unpacks to {total} bytes, more than the "
                                  f"{MAX_BYTES} a package may take; nothing installed")


def is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def download(url: str, target: Path, timeout: float = 60.0) -> Path:
    """Fetch `url` into `target` (a file), refusing more than MAX_BYTES."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise MarketError(f"{url} answered HTTP {response.status_code}; check the URL "
                                  "or the index it came from")
            _write_body(response, target, url)
    except httpx.HTTPError as exc:
        raise MarketError(f"cannot download {url}: {exc}; check the URL and that the server "
                          "is up") from None
    return target


def _write_body(response: object, target: Path, url: str) -> None:
    done = 0
    with target.open("wb") as sink:
        for block in response.iter_bytes(_CHUNK):  # type: ignore[attr-defined]
            done += len(block)
            if done > MAX_BYTES:
                raise PackageRefusedError(f"{url} is larger than the {MAX_BYTES} bytes a "
                                          "package may take; nothing installed")
            sink.write(block)
