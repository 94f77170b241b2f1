"""The sandbox's read-only mounts the probe relies on, and the rule on unsound answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mirador.catalog.manifest import ModelEntry, ResolvedPersona, SamplingOptions
from mirador.errors import PackageRefusedError
from mirador.market.probe import Verdict, check_answers
from mirador.settings import SandboxConfig
from mirador.tools.sandbox import run_code

WRITE_AND_READ = """
try:
    open("/mnt/shared/data.txt", "a").write("changed")
    print("wrote")
except OSError as exc:
    import errno
    print("refused", errno.errorcode[exc.errno])
print(open("/mnt/shared/data.txt").read())
"""


def test_binds_are_mounted_read_only(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("original")
    shared.chmod(0o777)  # open to any uid: only the read-only mount may stop the write
    (shared / "data.txt").chmod(0o666)
    run = asyncio.run(run_code(WRITE_AND_READ, SandboxConfig(), [(shared, "/mnt/shared")]))
    assert run.ok, run.stderr
    assert run.stdout.split("\n")[:2] == ["refused EROFS", "original"]
    assert (shared / "data.txt").read_text() == "original"


def test_half_the_answers_unsound_passes_more_is_refused() -> None:
    persona = ResolvedPersona(id="p", model=ModelEntry(id="m", path="/x.gguf"), system=None,
                              options=SamplingOptions(), loras=())
    good, bad = Verdict("q", "a fine answer", ()), Verdict("q", "", ("empty",))
    check_answers(persona, [good, bad])  # one of two: allowed
    with pytest.raises(PackageRefusedError, match="answered 2 of 3 test questions badly"):
        check_answers(persona, [good, bad, bad])
