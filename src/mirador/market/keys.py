"""Signing keys (elliptic curve P-256, made and kept offline) and the keys a home trusts.

Under the home: `market/keys/NAME.key` (the private key, PEM, readable by its owner
only) with `NAME.pub`, and `market/trusted/ID.pub`, one per trusted publisher. A key's
id is the SHA-256 of its public PEM: the hint `model-signing` writes into every
signature, so the verifier can find the trusted key a signature claims.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mirador.errors import MarketError
from mirador.settings import Settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class PublicKey:
    """A public key and its id (the SHA-256 of its PEM, hex)."""

    path: Path
    key_id: str

    @property
    def short(self) -> str:
        return self.key_id[:16]


def keys_dir(settings: Settings) -> Path:
    return settings.home / "market" / "keys"


def trusted_dir(settings: Settings) -> Path:
    return settings.home / "market" / "trusted"


def key_id(public_pem: bytes) -> str:
    """The id `model-signing` records for a key: SHA-256 of its SubjectPublicKeyInfo PEM."""
    return hashlib.sha256(public_pem).hexdigest()


def new_key(settings: Settings, name: str) -> PublicKey:
    """Make a P-256 key pair named `name`; refuse to overwrite one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not _NAME.match(name):
        raise MarketError(f"key name '{name}' must be letters, digits, '.', '_' or '-'")
    private_path = keys_dir(settings) / f"{name}.key"
    if private_path.exists():
        raise MarketError(f"a key named '{name}' exists already ({private_path}); pick another "
                          "name")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path = private_path.with_suffix(".pub")
    public_path.write_bytes(_public_pem(key.public_key()))
    return PublicKey(public_path, key_id(public_path.read_bytes()))


def private_key_path(settings: Settings, name_or_path: str) -> Path:
    """The private key `name_or_path` names: a key made here, or a PEM file."""
    named = keys_dir(settings) / f"{name_or_path}.key"
    path = named if named.is_file() else Path(name_or_path).expanduser()
    if not path.is_file():
        raise MarketError(f"no key '{name_or_path}': neither {named} nor a file; make one with "
                          "'mirador keys new NAME'")
    return path


def export_key(settings: Settings, name: str) -> bytes:
    """The public PEM of the key named `name`, to hand to people who will trust it."""
    path = keys_dir(settings) / f"{name}.pub"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in keys_dir(settings).glob("*.pub"))) or "none"
        raise MarketError(f"no key named '{name}' (known: {known}); make one with "
                          "'mirador keys new NAME'")
    return path.read_bytes()


def list_keys(settings: Settings) -> list[tuple[str, PublicKey]]:
    """This home's own keys, by name."""
    return [(p.stem, PublicKey(p, key_id(p.read_bytes())))
            for p in sorted(keys_dir(settings).glob("*.pub"))]


def trust(settings: Settings, public_file: Path) -> PublicKey:
    """Trust the public key in `public_file`: packages it signed may be installed."""
    pem = _normalised_public_pem(public_file)
    target = trusted_dir(settings) / f"{key_id(pem)[:16]}.pub"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pem)
    return PublicKey(target, key_id(pem))


def trusted_keys(settings: Settings) -> list[PublicKey]:
    """Every key this home trusts."""
    return [PublicKey(p, key_id(p.read_bytes()))
            for p in sorted(trusted_dir(settings).glob("*.pub"))]


def _normalised_public_pem(path: Path) -> bytes:
    """The P-256 public key in `path`, re-encoded the way `model-signing` hashes it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise MarketError(f"cannot read the key file {path} ({exc.strerror})") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise MarketError(f"{path} is not a PEM public key; ask the publisher for the output of "
                          "'mirador keys export NAME'") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise MarketError(f"{path} is not an elliptic-curve P-256 key, which is what Mirador "
                          "signs with")
    return _public_pem(key)


def _public_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)
