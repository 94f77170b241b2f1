"""`mirador models du`: disk taken by base models, adapters and personas, and what sharing saves.

A persona is a few lines of YAML on a shared base model (plus, at most, a
small LoRA adapter). Without sharing, each specialist would be a full model
file of its own, as in the original Mirador; `saved` is the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mirador.catalog.manifest import Manifest, ModelEntry
from mirador.catalog.packaged import packaged_size
from mirador.errors import MiradorError


@dataclass(frozen=True)
class DiskRow:
    name: str  # a model id, or an adapter's path
    bytes: int
    personas: int  # personas riding on it
    where: str


@dataclass(frozen=True)
class DiskUsage:
    models: tuple[DiskRow, ...]
    adapters: tuple[DiskRow, ...]
    personas: int

    @property
    def total(self) -> int:
        return sum(r.bytes for r in self.models) + sum(r.bytes for r in self.adapters)

    @property
    def unshared(self) -> int:
        """Every persona as a full copy of its base model, plus unused base models."""
        return sum(r.bytes * max(r.personas, 1) for r in self.models)

    @property
    def saved(self) -> int:
        return max(self.unshared - self.total, 0)


def disk_usage(manifest: Manifest, models_dir: Path) -> DiskUsage:
    riders: dict[str, int] = {}
    adapters: dict[str, int] = {}
    for persona in manifest.personas:
        resolved = manifest.resolve(persona.id)
        riders[resolved.model.id] = riders.get(resolved.model.id, 0) + 1
        for lora in resolved.loras:
            adapters[lora.path] = adapters.get(lora.path, 0) + 1
    models = tuple(_model_row(m, riders.get(m.id, 0), models_dir) for m in manifest.models)
    lora_rows = tuple(DiskRow(path, _size(Path(path).expanduser()), count,
                              str(Path(path).expanduser()))
                      for path, count in sorted(adapters.items()))
    return DiskUsage(models, lora_rows, len(manifest.personas))


def _model_row(model: ModelEntry, personas: int, models_dir: Path) -> DiskRow:
    if model.path:
        path = Path(model.path).expanduser()
        return DiskRow(model.id, _size(path), personas, str(path))
    if model.package:
        try:
            size, ready = packaged_size(model.package, models_dir)
        except MiradorError:
            return DiskRow(model.id, 0, personas, f"package {model.package} (not installed)")
        where = str(ready) if ready else f"package {model.package} (assembled on first use)"
        return DiskRow(model.id, size, personas, where)
    return DiskRow(model.id, 0, personas, f"kept by the {model.backend} server")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
