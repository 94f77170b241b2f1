"""Install, list and uninstall packages: verified first, validated next, written last.

A package is staged in a temporary directory outside the home (copied, unpacked
or downloaded), its signature checked there against the home's trusted keys, then
validated (`checks.py`, `probe.py`). Only a package that passed everything is
copied to `market/packages/ID/` under the home and its personas and chains added to
the home's `manifest.yaml`, in one atomic write; any refusal leaves the home as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirador.catalog.manifest import ChainEntry, Manifest, PersonaEntry, manifest_for
from mirador.errors import ConfigError, MarketError, PackageRefusedError
from mirador.market import archive, checks, probe
from mirador.market.keys import PublicKey, trusted_keys
from mirador.market.manifest import (
    MANIFEST_NAME,
    PackageManifest,
    read_chains,
    read_package_manifest,
    read_personas,
)
from mirador.market.signing import verify
from mirador.settings import Settings

RECORD_NAME = "installed.json"
Report = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """A verified, validated package, ready to be written to the home."""

    directory: Path
    manifest: PackageManifest
    key: PublicKey
    personas: list[PersonaEntry]
    chains: list[ChainEntry]
    verdicts: list[probe.Verdict] = field(default_factory=list)


def packages_dir(settings: Settings) -> Path:
    return settings.home / "market" / "packages"


def install(settings: Settings, source: str, report: Report | None = None) -> Plan:
    """Verify, validate and install the package at `source` (a directory, archive or URL)."""
    say = report or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="mirador-package-") as tmp:
        staged = stage(source, Path(tmp))
        key = verify(staged, trusted_keys(settings))
        say(f"signature verified: key {key.short}")
        try:
            plan = validate(settings, staged, key, say)
        except ConfigError as exc:
            raise PackageRefusedError(f"{exc}; nothing installed") from None
        _commit(settings, plan)
    return plan


def stage(source: str, tmp: Path) -> Path:
    """A private copy of the package at `source` under `tmp`: what is verified is what
    will be installed, whatever happens to the source meanwhile."""
    target = tmp / "package"
    if archive.is_url(source):
        downloaded = archive.download(source, tmp / "download.tar.gz")
        return _root(archive.unpack(downloaded, target))
    path = Path(source).expanduser()
    if path.is_dir():
        _regular_files_only(path)
        shutil.copytree(path, target)
        return target
    if path.is_file():
        return _root(archive.unpack(path, target))
    raise MarketError(f"{source} is neither a package directory, a .tar.gz nor an http(s) URL")


def _regular_files_only(directory: Path) -> None:
    """Refuse links and special files: a package holds directories and regular files."""
    for path in directory.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise PackageRefusedError(f"the package holds '{path.relative_to(directory)}', "
                                      "which is a link or a special file, not a regular file; "
                                      "nothing installed")


def _root(unpacked: Path) -> Path:
    """The package directory in an unpacked archive: its top, or its one folder."""
    if (unpacked / MANIFEST_NAME).exists():
        return unpacked
    inner = list(unpacked.iterdir())
    return inner[0] if len(inner) == 1 and inner[0].is_dir() else unpacked


def validate(settings: Settings, staged: Path, key: PublicKey, say: Report) -> Plan:
    """Every check short of writing; the first failure is raised with its reason."""
    manifest = read_package_manifest(staged)
    if (packages_dir(settings) / manifest.id).exists():
        raise PackageRefusedError(f"package '{manifest.id}' is installed already; run "
                                  f"'mirador uninstall {manifest.id}' first")
    home = manifest_for(settings)
    base = checks.check_base(settings, home, manifest)
    personas, chains = read_personas(staged, manifest), read_chains(staged, manifest)
    checks.check_references(manifest, personas, chains, home)
    checks.check_persona_text(personas)
    checks.check_adapters(staged, manifest, base)
    say("manifest, base model, adapters and templates checked")
    verdicts = _try_personas(settings, staged, manifest, personas, home, base, say)
    return Plan(staged, manifest, key, personas, chains, verdicts)


def _try_personas(settings: Settings, staged: Path, manifest: PackageManifest,
                  personas: list[PersonaEntry], home: Manifest, base: Path,
                  say: Report) -> list[probe.Verdict]:
    merged = Manifest(models=home.models, personas=[*home.personas, *personas])
    verdicts: list[probe.Verdict] = []
    for persona in personas:
        resolved = merged.resolve(persona.id)
        adapter = staged / resolved.loras[0].path if resolved.loras else None
        found = probe.try_persona(settings, resolved, base, adapter, manifest.test_queries)
        sound = sum(not v.flags for v in found)
        say(f"persona '{persona.id}': {sound} of {len(found)} test answers sound")
        verdicts += found
    return verdicts


def _commit(settings: Settings, plan: Plan) -> None:
    target = packages_dir(settings) / plan.manifest.id
    partial = target.with_name(f".{plan.manifest.id}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(plan.directory, partial, symlinks=True)
    (partial / RECORD_NAME).write_text(json.dumps(_record(plan), indent=1), encoding="utf-8")
    partial.rename(target)
    try:
        _edit_manifest(settings, add=[_installed_persona(p, target) for p in plan.personas],
                       chains=[c.model_dump(exclude_defaults=True) for c in plan.chains],
                       remove=set())
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _installed_persona(persona: PersonaEntry, target: Path) -> dict[str, Any]:
    data = persona.model_dump(exclude_defaults=True)
    if persona.lora is not None:
        data["lora"] = {"path": str(target / persona.lora.path), "scale": persona.lora.scale}
    return data


def _record(plan: Plan) -> dict[str, Any]:
    m = plan.manifest
    return {"id": m.id, "version": m.version, "author": m.author, "licence": m.licence,
            "description": m.description, "base_model": m.base_model.id, "key": plan.key.key_id,
            "personas": [p.id for p in plan.personas], "chains": [c.id for c in plan.chains]}


def _edit_manifest(settings: Settings, add: list[dict[str, Any]], chains: list[dict[str, Any]],
                   remove: set[str]) -> None:
    """Add personas and chains to the home's manifest.yaml, drop ids in `remove`; the
    result is checked whole before one atomic write replaces the file."""
    import yaml
    from pydantic import ValidationError

    from mirador.atomic import write_text_atomic
    from mirador.catalog.manifest import builtin_manifest_data, merge_manifest_data
    from mirador.yamlfile import describe_validation_error, read_yaml

    path = settings.manifest_path
    data = read_yaml(path) if path.exists() else {}
    for key, new in (("personas", add), ("chains", chains)):
        kept = [e for e in data.get(key) or [] if e.get("id") not in remove]
        if kept or new:
            data[key] = [*kept, *new]
        else:
            data.pop(key, None)
    try:
        merged = Manifest.model_validate(merge_manifest_data(builtin_manifest_data(), data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from None
    problems = merged.check_references()
    if problems:
        raise ConfigError("; ".join(problems))
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                      suffix=".tmp")


def installed(settings: Settings) -> list[dict[str, Any]]:
    """The records of the installed packages."""
    records = []
    for record in sorted(packages_dir(settings).glob(f"*/{RECORD_NAME}")):
        records.append(json.loads(record.read_text(encoding="utf-8")))
    return records


def uninstall(settings: Settings, package_id: str) -> dict[str, Any]:
    """Remove an installed package: its personas and chains, then its files."""
    target = packages_dir(settings) / package_id
    if not (target / RECORD_NAME).is_file():
        known = ", ".join(r["id"] for r in installed(settings)) or "none"
        raise MarketError(f"no installed package '{package_id}' (installed: {known})")
    record = json.loads((target / RECORD_NAME).read_text(encoding="utf-8"))
    _edit_manifest(settings, add=[], chains=[],
                   remove={*record["personas"], *record["chains"]})
    shutil.rmtree(target)
    return dict(record)
