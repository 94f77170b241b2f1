"""Signatures: only a package signed by a trusted key, unchanged since, gets past them.

Every refusal is checked for its message and for the installer's home being exactly
as it was (every file and its hash)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mirador.errors import MarketError, PackageRefusedError
from mirador.market.install import install, installed
from mirador.market.keys import new_key, trust, trusted_keys
from mirador.market.publish import publish
from mirador.settings import Settings
from tests.market.conftest import snapshot, write_package


def refused(settings: Settings, source: Path | str) -> str:
    """Install `source`, expect a refusal, check the home is untouched, return the reason."""
    before, packages = snapshot(settings.home), installed(settings)
    with pytest.raises(PackageRefusedError) as caught:
        install(settings, str(source))
    assert snapshot(settings.home) == before
    assert installed(settings) == packages
    return str(caught.value)


@pytest.fixture
def signed(tmp_path: Path, publisher: Settings, base_sha: str) -> Path:
    package = write_package(tmp_path / "pkg", base_sha)
    publish(publisher, package, "ada")
    return package


def test_a_tampered_file_is_refused(signed: Path, installer: Settings) -> None:
    persona = signed / "personas" / "calm_coach.yaml"
    persona.write_text(persona.read_text().replace("calm, practical", "reckless"))
    reason = refused(installer, signed)
    assert "does not match its signature" in reason
    assert "personas/calm_coach.yaml" in reason


def test_a_file_added_after_signing_is_refused(signed: Path, installer: Settings) -> None:
    (signed / ".gitignore").write_text("# not signed\n")  # git files are signed too
    reason = refused(installer, signed)
    assert "Extra files" in reason and ".gitignore" in reason


def test_a_removed_file_is_refused(signed: Path, installer: Settings) -> None:
    (signed / "chains" / "calm.yaml").unlink()
    assert "Missing files" in refused(installer, signed)


def test_an_unsigned_package_is_refused(tmp_path: Path, installer: Settings,
                                        base_sha: str) -> None:
    package = write_package(tmp_path / "pkg", base_sha)
    reason = refused(installer, package)
    assert "not signed" in reason and "mirador publish" in reason


def test_a_key_this_home_does_not_trust_is_refused(tmp_path: Path, publisher: Settings,
                                                    installer: Settings, base_sha: str) -> None:
    mallory = new_key(publisher, "mallory")
    package = write_package(tmp_path / "pkg", base_sha)
    publish(publisher, package, "mallory")
    reason = refused(installer, package)
    assert f"signed by key {mallory.short}" in reason and "does not trust" in reason
    assert "mirador trust" in reason


def test_a_signature_claiming_a_trusted_key_does_not_verify(
        tmp_path: Path, publisher: Settings, installer: Settings, base_sha: str) -> None:
    new_key(publisher, "mallory")
    package = write_package(tmp_path / "pkg", base_sha)
    publish(publisher, package, "mallory")
    bundle = json.loads((package / "mirador.sig").read_text())
    trusted = trusted_keys(installer)[0].key_id
    bundle["verificationMaterial"]["publicKey"]["hint"] = trusted  # claims to be Ada
    (package / "mirador.sig").write_text(json.dumps(bundle))
    assert "does not verify" in refused(installer, package)


def test_publish_writes_an_archive_and_a_traversing_one_is_refused(
        tmp_path: Path, signed: Path, publisher: Settings, installer: Settings) -> None:
    done = publish(publisher, signed, "ada", archive_to=tmp_path / "calm.tar.gz")
    assert done.archive is not None
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        archive.add(signed / "mirador-package.yaml", arcname="../escaped.yaml")
    reason = refused(installer, evil)
    assert "outside the package" in reason
    assert not (tmp_path / "escaped.yaml").exists()


def test_trust_refuses_what_is_not_a_public_key(tmp_path: Path, installer: Settings,
                                                 publisher: Settings) -> None:
    private = publisher.home / "market" / "keys" / "ada.key"
    assert private.stat().st_mode & 0o777 == 0o600
    with pytest.raises(MarketError, match="not a PEM public key"):
        trust(installer, private)
    with pytest.raises(MarketError, match="exists already"):
        new_key(publisher, "ada")


def test_a_link_in_the_package_is_refused(signed: Path, installer: Settings,
                                          tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host file")
    (signed / "personas" / "extra.yaml").symlink_to(tmp_path / "secret")
    assert "'personas/extra.yaml', which is a link" in refused(installer, signed)


def test_a_malformed_signature_is_refused(signed: Path, installer: Settings) -> None:
    bundle = json.loads((signed / "mirador.sig").read_text())
    del bundle["dsseEnvelope"]
    (signed / "mirador.sig").write_text(json.dumps(bundle))
    assert "not a well-formed model-signing bundle" in refused(installer, signed)
    (signed / "mirador.sig").write_text("not json")
    assert "unreadable bundle" in refused(installer, signed)
