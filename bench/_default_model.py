"""The GGUF behind the default `quick` persona, or a given one put in its place, for benches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class BenchModel:
    """The model a bench runs, and the llama.cpp settings Mirador would load it with."""

    model_id: str
    path: Path
    n_ctx: int
    threads: int
    n_batch: int
    prefix: tuple[dict[str, str], ...]  # the quick persona's system prompt and examples


def prepare_home(home: Path, gguf: Path | None = None) -> BenchModel:
    """Point `home`'s manifest at `gguf` (when given) in place of the default model."""
    from mirador.catalog.manifest import load_manifest
    from mirador.catalog.packaged import packaged_gguf
    from mirador.settings import load_settings

    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=home)
    quick = load_manifest(settings.manifest_path).resolve("quick")
    model = quick.model
    if gguf is not None:
        entry = {"id": model.id, "backend": "llamacpp", "path": str(gguf.resolve()),
                 "context_length": model.context_length}
        (home / "manifest.yaml").write_text(yaml.safe_dump({"models": [entry]}))
        path = gguf.resolve()
    elif model.package:
        path = packaged_gguf(model.package, settings.models_dir)
    else:
        path = Path(model.path or "").expanduser()
    _patient_stages(home, settings)
    cfg = settings.config.backends.llamacpp
    return BenchModel(model_id=model.id, path=path, n_ctx=min(model.context_length, cfg.n_ctx),
                      threads=cfg.n_threads or os.cpu_count() or 1, n_batch=cfg.n_batch,
                      prefix=_persona_prefix(quick))


def _patient_stages(home: Path, settings: object) -> None:
    """The default stages with long timeouts: a busy machine must not abort a measurement."""
    stages = [s.model_dump(exclude_none=True) | {"first_token_timeout": 600.0,
                                                  "total_timeout": 1200.0}
              for s in settings.config.stages]  # type: ignore[attr-defined]
    (home / "config.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))


def _persona_prefix(persona: object) -> tuple[dict[str, str], ...]:
    """The chat messages the quick stage puts before the question (as prompts.py does)."""
    system = persona.system  # type: ignore[attr-defined]
    messages = [{"role": "system", "content": system}] if system else []
    for example in persona.examples:  # type: ignore[attr-defined]
        messages += [{"role": "user", "content": example.user},
                     {"role": "assistant", "content": example.assistant}]
    return tuple(messages)
