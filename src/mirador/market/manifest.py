"""`mirador-package.yaml`: what a package is, who made it, for which base, what it holds."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mirador.catalog.manifest import ChainEntry, PersonaEntry
from mirador.errors import PackageRefusedError
from mirador.yamlfile import describe_validation_error, read_yaml

MANIFEST_NAME = "mirador-package.yaml"
SIGNATURE_NAME = "mirador.sig"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseModelRef(_Strict):
    """The base model a package's personas and adapters are made for."""

    id: str = Field(description="The model id personas name in their 'model'.")
    sha256: str = Field(description="The base GGUF's SHA-256, hex: the installer's file "
                        "must be this one.")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError("must be 64 lowercase hex digits (the SHA-256 of the base GGUF)")
        return value


class Content(_Strict):
    """One file of the package: a persona or chain (YAML) or a LoRA adapter (GGUF)."""

    kind: Literal["persona", "chain", "adapter"]
    path: str = Field(description="Relative to the package directory, '/'-separated.")

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"'{value}' must be a relative path inside the package")
        return value


class PackageManifest(_Strict):
    """The manifest at the root of every package."""

    id: str
    version: str = Field(min_length=1, max_length=32)
    author: str = Field(min_length=1, max_length=200)
    licence: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    base_model: BaseModelRef
    contents: list[Content] = Field(min_length=1)
    test_queries: list[str] = Field(default=[], max_length=10, description="Questions the "
                                    "installer also asks the package's personas.")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (at most 64)")
        return value

    def paths(self, kind: str) -> list[str]:
        return [c.path for c in self.contents if c.kind == kind]


def read_package_manifest(directory: Path) -> PackageManifest:
    """The package's manifest, validated; refused with the reason when it is not valid."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise PackageRefusedError(f"the package has no {MANIFEST_NAME} at its root; a package "
                                  "is a directory holding one (see the README's Marketplace)")
    try:
        return PackageManifest.model_validate(read_yaml(path) or {})
    except ValidationError as exc:
        raise PackageRefusedError(describe_validation_error(Path(MANIFEST_NAME), exc)) from None


def read_personas(directory: Path, manifest: PackageManifest) -> list[PersonaEntry]:
    """Every persona file the manifest lists (one persona, or a list of them, per file)."""
    return [PersonaEntry.model_validate(e) for p in manifest.paths("persona")
            for e in _entries(directory, p, PersonaEntry)]


def read_chains(directory: Path, manifest: PackageManifest) -> list[ChainEntry]:
    """Every chain file the manifest lists."""
    return [ChainEntry.model_validate(e) for p in manifest.paths("chain")
            for e in _entries(directory, p, ChainEntry)]


def _entries(directory: Path, relative: str, model: type[BaseModel]) -> list[dict]:
    path = directory / relative
    if not path.is_file():
        raise PackageRefusedError(f"{MANIFEST_NAME} lists '{relative}', which is not in the "
                                  "package")
    data = read_yaml(path)
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        try:
            model.model_validate(entry)
        except ValidationError as exc:
            raise PackageRefusedError(describe_validation_error(Path(relative), exc)) from None
    return entries
