"""Personal LoRA adapters on disk: versions, the deployed one, and rollback.

Each persona's adapters live under `<home>/adapters/<persona>/`:

    v0001/adapter.gguf   the LoRA, in llama.cpp's GGUF adapter format
    v0001/meta.json      training data ids, metrics, base model and its SHA-256, verdict
    state.json           {"deployed": "v0002", "history": ["v0001"]}

A version is written whole into `vNNNN.partial/` and renamed when finished, so
an interrupted training leaves nothing half-made; `state.json` is replaced
atomically and only by a deploy, `use` or `rollback`, so the adapter answers run
with changes only then. `mirador.training` writes versions; requests read
`deployed()` (see `mirador.learning.personal`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirador.atomic import write_text_atomic
from mirador.errors import TrainingError

ADAPTER_FILE = "adapter.gguf"
META_FILE = "meta.json"
_VERSION = re.compile(r"^v(\d{4,})$")
_PERSONA = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class AdapterVersion:
    """One trained adapter: its version, file and what was recorded when it was made."""

    version: str
    path: Path
    meta: dict[str, Any]

    @property
    def adapter(self) -> Path:
        return self.path / ADAPTER_FILE

    @property
    def verdict(self) -> str:
        return str(self.meta.get("verdict", "?"))


class AdapterStore:
    """The adapter versions of one persona."""

    def __init__(self, home: Path, persona: str) -> None:
        if not _PERSONA.match(persona):
            raise TrainingError(f"'{persona}' is not a persona id adapters can be kept for; "
                                "use letters, digits, '-', '_' or '.'")
        self.persona = persona
        self.root = home / "adapters" / persona

    # -- reading -----------------------------------------------------------------

    def versions(self) -> list[AdapterVersion]:
        """Every finished version, oldest first."""
        if not self.root.is_dir():
            return []
        found = [self._read(p) for p in sorted(self.root.iterdir())
                 if p.is_dir() and _VERSION.match(p.name)]
        return [v for v in found if v is not None]

    def get(self, version: str) -> AdapterVersion:
        """A version by name (`v0003` or `3`), or a TrainingError naming the known ones."""
        name = version if version.startswith("v") else f"v{int(version):04d}" \
            if version.isdigit() else version
        found = self._read(self.root / name) if _VERSION.match(name) else None
        if found is None:
            known = ", ".join(v.version for v in self.versions()) or "none yet"
            raise TrainingError(f"persona '{self.persona}' has no adapter version '{version}' "
                                f"(known: {known}); see `mirador adapters ls`")
        return found

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "state.json").read_text())
        except FileNotFoundError:
            return {"deployed": None, "history": []}
        except (OSError, ValueError) as exc:
            raise TrainingError(f"{self.root / 'state.json'} is unreadable ({exc}); delete it "
                                "to run without a personal adapter") from None
        return {"deployed": data.get("deployed"), "history": list(data.get("history", []))}

    def deployed(self) -> AdapterVersion | None:
        """The version answers use now (None: the base model alone)."""
        name = self.state()["deployed"]
        return self._read(self.root / name) if name else None

    def _read(self, path: Path) -> AdapterVersion | None:
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError):
            return None  # not finished (or damaged): never offered
        if not (path / ADAPTER_FILE).is_file():
            return None
        return AdapterVersion(path.name, path, meta)

    # -- writing -----------------------------------------------------------------

    def next_version(self) -> str:
        numbers = [int(m.group(1)) for p in (self.root.iterdir() if self.root.is_dir() else ())
                   if (m := _VERSION.match(p.name.removesuffix(".partial")))]
        return f"v{max(numbers, default=0) + 1:04d}"

    def staging(self, version: str) -> Path:
        """A fresh `vNNNN.partial/` folder to write a version into."""
        path = self.root / f"{version}.partial"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def finish(self, staging: Path, meta: dict[str, Any]) -> AdapterVersion:
        """Write `meta` and make the staged version visible (one rename)."""
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        final = staging.with_name(staging.name.removesuffix(".partial"))
        staging.rename(final)
        found = self._read(final)
        if found is None:
            raise TrainingError(f"the adapter written to {final} cannot be read back")
        return found

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def set_meta(self, version: AdapterVersion, **changes: Any) -> None:
        meta = {**version.meta, **changes}
        write_text_atomic(version.path / META_FILE, json.dumps(meta, indent=2, sort_keys=True)
                          + "\n")

    def use(self, version: str) -> AdapterVersion:
        """Deploy `version`; the one deployed before goes on the rollback history."""
        chosen = self.get(version)
        state = self.state()
        if state["deployed"] != chosen.version:
            history = state["history"] + ([state["deployed"]] if state["deployed"] else [])
            self._write_state(chosen.version, history)
        return chosen

    def rollback(self) -> AdapterVersion | None:
        """Go back to the adapter deployed before this one (None: back to the base model)."""
        state = self.state()
        if state["deployed"] is None:
            raise TrainingError(f"persona '{self.persona}' has no deployed adapter to roll back")
        history = [v for v in state["history"] if self._read(self.root / v) is not None]
        previous = history.pop() if history else None
        self._write_state(previous, history)
        return self._read(self.root / previous) if previous else None

    def _write_state(self, deployed: str | None, history: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.root / "state.json",
                          json.dumps({"deployed": deployed, "history": history}) + "\n")


def personas_with_adapters(home: Path) -> list[str]:
    """Ids of the personas that have an adapters folder."""
    root = home / "adapters"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
