"""The whole way, as people run it: one home publishes to an index served on 127.0.0.1,
another searches it, trusts the key, installs by URL, and asks the persona (real
SmolLM2, `mirador ask`); then lists and uninstalls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.market.conftest import StaticServer, snapshot, write_package


def mirador(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_published_in_one_home_installed_in_another_and_answering(
        tmp_path: Path, isolated_home: Path, static_server: StaticServer,
        base_sha: str, smollm_gguf: Path) -> None:
    from tests.conftest import link_default_model

    ada = link_default_model(tmp_path / "ada-home", smollm_gguf)
    assert "made key 'ada'" in ok(mirador(ada, "keys", "new", "ada"))
    ok(mirador(ada, "keys", "export", "ada", "--out", str(tmp_path / "ada.pub")))
    package = write_package(tmp_path / "pkg", base_sha)
    out = ok(mirador(ada, "publish", str(package), "--key", "ada", "--index",
                     str(static_server.directory)))
    assert "signed calm-coach 1.0.0" in out

    home = isolated_home
    found = ok(mirador(home, "search-market", "calm coach", "--index", static_server.url))
    url = f"{static_server.url}/calm-coach-1.0.0.tar.gz"
    assert f"mirador install {url}" in found
    assert "nothing in" in ok(mirador(home, "search-market", "lawyer", "--index",
                                      static_server.url))

    before = snapshot(home)
    untrusted = mirador(home, "install", url)
    assert untrusted.returncode == 1 and "does not trust" in untrusted.stderr
    assert snapshot(home) == before

    ok(mirador(home, "trust", str(tmp_path / "ada.pub")))
    out = ok(mirador(home, "install", url))
    assert "signature verified" in out and "installed calm-coach 1.0.0" in out
    assert "calm-coach" in ok(mirador(home, "packages"))

    events = [json.loads(line) for line in ok(mirador(
        home, "ask", "--chain", "calm", "--local", "--json", "--no-memory",
        "How do I stay calm before an exam?")).splitlines()]
    done = events[-1]
    assert done["type"] == "done" and done["final_stage"] == "calm_coach"
    assert len(done["answer"].split()) >= 5

    assert "uninstalled calm-coach" in ok(mirador(home, "uninstall", "calm-coach"))
    assert "no packages installed" in ok(mirador(home, "packages"))
    gone = mirador(home, "ask", "--chain", "calm", "--local", "hello")
    assert gone.returncode == 1 and "chain 'calm' is not in the manifest" in gone.stderr


def test_cli_refusals_are_one_line_messages(tmp_path: Path, isolated_home: Path) -> None:
    result = mirador(isolated_home, "install", str(tmp_path / "nothing-here"))
    assert result.returncode == 1
    assert "neither a package directory" in result.stderr and "Traceback" not in result.stderr
    result = mirador(isolated_home, "keys", "export", "nobody")
    assert result.returncode == 1 and "mirador keys new NAME" in result.stderr
    result = mirador(isolated_home, "search-market", "x", "--index", str(tmp_path))
    assert result.returncode == 1 and "index.json" in result.stderr
