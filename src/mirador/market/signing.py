"""Signing and verifying a package directory with OpenSSF `model-signing`.

The signature (`mirador.sig`, a Sigstore bundle holding a DSSE envelope) covers the
SHA-256 of every file in the directory but itself, git files included: a file added,
removed or changed after signing fails verification. Keys are elliptic-curve keys used
offline; no transparency log or certificate authority is involved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirador.errors import PackageRefusedError
from mirador.market.keys import PublicKey
from mirador.market.manifest import SIGNATURE_NAME


def _hashing() -> Any:
    from model_signing import hashing

    # Everything is signed except the signature itself; git files too (the library
    # skips them by default, which would let a package carry unsigned files).
    return (hashing.Config().use_file_serialization(hashing_algorithm="sha256")
            .set_ignored_paths(paths=[SIGNATURE_NAME], ignore_git_paths=False))


def sign(directory: Path, private_key: Path) -> Path:
    """Write `directory/mirador.sig`, signing every other file with `private_key`."""
    from model_signing import signing

    signature = directory / SIGNATURE_NAME
    signature.unlink(missing_ok=True)
    (signing.Config().use_elliptic_key_signer(private_key=private_key)
     .set_hashing_config(_hashing()).sign(directory, signature))
    return signature


def signer_id(directory: Path) -> str:
    """The key id the signature says it was made with (not yet checked)."""
    signature = directory / SIGNATURE_NAME
    if not signature.is_file():
        raise PackageRefusedError(f"the package is not signed (no {SIGNATURE_NAME}); ask its "
                                  "publisher to sign it with 'mirador publish DIR --key K'")
    try:
        bundle = json.loads(signature.read_text(encoding="utf-8"))
        return str(bundle["verificationMaterial"]["publicKey"]["hint"])
    except (ValueError, KeyError, TypeError):
        raise PackageRefusedError(f"{SIGNATURE_NAME} is not a model-signing signature made "
                                  "with a key (unreadable bundle); nothing installed") from None


def verify(directory: Path, trusted: list[PublicKey]) -> PublicKey:
    """The trusted key whose signature covers exactly the files in `directory`."""
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying
    from pydantic import ValidationError

    claimed = signer_id(directory)
    key = next((k for k in trusted if k.key_id == claimed), None)
    if key is None:
        raise PackageRefusedError(
            f"the package is signed by key {claimed[:16]}, which this home does not trust "
            f"(trusted: {', '.join(k.short for k in trusted) or 'none'}); if you trust its "
            "publisher, get their public key and run 'mirador trust KEYFILE'")
    try:
        (verifying.Config().use_elliptic_key_verifier(public_key=key.path)
         .set_hashing_config(_hashing()).verify(directory, directory / SIGNATURE_NAME))
    except ValidationError as exc:
        raise PackageRefusedError(f"{SIGNATURE_NAME} is not a well-formed model-signing bundle "
                                  f"({exc.errors()[0]['msg']}); nothing installed") from None
    except InvalidSignature:
        raise PackageRefusedError(f"the signature does not verify with key {key.short} (it "
                                  "was forged or altered); nothing installed") from None
    except ValueError as exc:
        raise PackageRefusedError(f"the package does not match its signature: {exc}; it was "
                                  "changed after it was signed, nothing installed") from None
    return key
