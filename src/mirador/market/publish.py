"""`mirador publish`: check a package directory, sign it, and optionally archive and index it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mirador.errors import MarketError
from mirador.market import archive, index, signing
from mirador.market.keys import key_id, private_key_path
from mirador.market.manifest import PackageManifest, read_package_manifest
from mirador.settings import Settings


@dataclass(frozen=True)
class Published:
    manifest: PackageManifest
    signature: Path
    key_id: str
    archive: Path | None = None
    index: Path | None = None


def publish(settings: Settings, directory: Path, key: str, archive_to: Path | None = None,
            index_dir: Path | None = None) -> Published:
    """Sign `directory` with `key`; with `archive_to` or `index_dir`, also write its .tar.gz
    (and, with `index_dir`, its entry in that index)."""
    manifest = read_package_manifest(directory)
    missing = [c.path for c in manifest.contents if not (directory / c.path).is_file()]
    if missing:
        raise MarketError(f"the manifest lists {', '.join(missing)}, which are not in "
                          f"{directory}; add the files or remove them from the manifest")
    private = private_key_path(settings, key)
    signature = signing.sign(directory, private)
    published = Published(manifest, signature, _signer(private))
    if index_dir is not None:
        archive_to = index_dir / f"{manifest.id}-{manifest.version}.tar.gz"
    if archive_to is None:
        return published
    packed = archive.pack(directory, archive_to)
    listed = index.add_to_index(index_dir, manifest, packed.name) if index_dir else None
    return Published(manifest, signature, published.key_id, packed, listed)


def _signer(private: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private.read_bytes(), None)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_id(pem)
