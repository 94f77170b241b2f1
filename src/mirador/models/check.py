"""`mirador models check`: everything that can be known about a manifest without loading it.

Beyond the manifest's own validation (shape, duplicate ids, references and
cycles), this reads GGUF headers: a model's file must be a GGUF model, a
persona's LoRA must be a LoRA that fits its base model, its base must run on
a backend that applies adapters, and every backend must exist.
"""

from __future__ import annotations

from pathlib import Path

from mirador.backends import (
    adapters_of,
    backend_names,
    backend_spec,
    create_backend,
    entry_problem,
)
from mirador.catalog.adapters import adapter_problems
from mirador.catalog.gguf_info import GGUFInfo, read_gguf_info
from mirador.catalog.manifest import Manifest, ModelEntry
from mirador.catalog.packaged import packaged_size
from mirador.errors import MiradorError
from mirador.settings import Settings


def check_manifest(manifest: Manifest, settings: Settings) -> list[str]:
    """Every problem found without loading a model; empty when all is well."""
    problems = manifest.check_references() + manifest.check_files()
    known = set(backend_names())
    headers: dict[str, GGUFInfo] = {}
    for model in manifest.models:
        if model.backend not in known:
            problems.append(f"model '{model.id}': unknown backend '{model.backend}' (known: "
                            f"{', '.join(sorted(known))})")
        elif (lacking := entry_problem(model)) is not None:
            problems.append(lacking)
        elif backend_spec(model.backend).suffix == ".gguf":  # its models are GGUF files
            problems.extend(_model_header(model, settings, headers))
    for persona in manifest.personas:
        if persona.lora is not None:
            base = manifest.resolve(persona.id).model
            problems.extend(f"persona '{persona.id}': {p}"
                            for p in _lora_problems(persona.lora.path, base, settings, headers))
    return problems


def _model_header(model: ModelEntry, settings: Settings,
                  headers: dict[str, GGUFInfo]) -> list[str]:
    path = _gguf_path(model, settings)
    if path is None or not path.is_file():
        return []  # a missing file is reported by check_files; a package not assembled yet
    try:
        info = read_gguf_info(path)
    except MiradorError as exc:
        return [f"model '{model.id}': {exc}"]
    if info.general_type != "model":
        return [f"model '{model.id}': {path} is a GGUF '{info.general_type}', not a model; "
                "an adapter belongs under a persona's 'lora'"]
    headers[model.id] = info
    return []


def _gguf_path(model: ModelEntry, settings: Settings) -> Path | None:
    if model.path:
        return Path(model.path).expanduser()
    if model.package:
        try:
            return packaged_size(model.package, settings.models_dir)[1]
        except MiradorError:
            return None  # reported when the model is used: the package is not installed
    return None


def _lora_problems(path: str, base: ModelEntry, settings: Settings,
                   headers: dict[str, GGUFInfo]) -> list[str]:
    backend = create_backend(base.backend, settings) if base.backend in backend_names() else None
    if backend is not None and adapters_of(backend) is None:
        return [f"it has a LoRA adapter but its base model '{base.id}' runs on {base.backend}, "
                "which cannot apply adapters per request; give it a llamacpp base model (for "
                "Ollama, build a model with ADAPTER in a Modelfile and name that instead)"]
    lora = Path(path).expanduser()
    if not lora.is_file() or base.id not in headers:
        return []  # missing files are reported by check_files
    try:
        found = adapter_problems(read_gguf_info(lora), headers[base.id])
    except MiradorError as exc:
        return [str(exc)]
    if not found:
        return []
    more = f" (and {len(found) - 1} more like it)" if len(found) > 1 else ""
    return [f"LoRA {lora} does not fit '{base.id}': {found[0]}{more}"]
