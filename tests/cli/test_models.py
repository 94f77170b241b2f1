"""`mirador models` check, du, ps, load, unload and pin, run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirador.catalog.manifest import Manifest
from mirador.models.disk import disk_usage
from tests.support.net import free_port, wait_healthy
from tests.support.tiny_gguf import write_tiny_lora


def mirador(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


def write_manifest(home: Path, text: str) -> Path:
    path = home / "manifest.yaml"
    path.write_text(text)
    return path


def tiny_manifest(tiny: Path, extra: str = "") -> str:
    return (f"models:\n  - {{id: small, path: {tiny}, context_length: 512}}\n"
            "personas:\n  - {id: helper, model: small, system: Help.}\n"
            "  - {id: brief_helper, model: helper, system: Be brief.}\n" + extra)


@pytest.mark.parametrize(("manifest", "message"), [
    ("personas:\n  - {id: ghost, model: no-such-model}\n",
     "'no-such-model', which is neither a model nor a persona"),
    ("models:\n  - {id: quick, path: /x.gguf}\n",
     "duplicate id 'quick' (model and persona)"),
    ("personas:\n  - {id: a, model: b}\n  - {id: b, model: a}\n",
     "persona cycle: a -> b -> a; make one of them name a model"),
    ("models:\n  - {id: gone, path: /nowhere/gone.gguf}\n",
     "model 'gone': file /nowhere/gone.gguf does not exist"),
    ("models:\n  - {id: remote, backend: nonesuch, name: x}\n",
     "model 'remote': unknown backend 'nonesuch'"),
])
def test_check_reports_bad_manifests_clearly(isolated_home: Path, manifest: str,
                                             message: str) -> None:
    write_manifest(isolated_home, manifest)
    result = mirador("models", "check")
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_check_validates_a_given_file_and_its_adapters(isolated_home: Path, tiny_gguf: Path,
                                                      tmp_path: Path) -> None:
    lora = write_tiny_lora(tmp_path / "lora.gguf", tiny_gguf)
    good = tmp_path / "good.yaml"
    good.write_text(tiny_manifest(tiny_gguf, f"  - {{id: styled, model: small, "
                                             f"lora: {{path: {lora}}}}}\n"))
    result = mirador("models", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert "ok: 2 models, 18 personas" in result.stdout  # the built-ins plus this file's
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_manifest(tiny_gguf, f"  - {{id: styled, model: small, "
                                            f"lora: {{path: {tiny_gguf}}}}}\n"))
    result = mirador("models", "check", str(bad))
    assert result.returncode == 1
    assert "persona 'styled'" in result.stderr and "not an adapter" in result.stderr


def test_du_counts_what_sharing_saves(isolated_home: Path, tiny_gguf: Path,
                                     tmp_path: Path) -> None:
    lora = write_tiny_lora(tmp_path / "lora.gguf", tiny_gguf)
    text = tiny_manifest(tiny_gguf, f"  - {{id: styled, model: helper, lora: {{path: {lora}}}}}\n")
    write_manifest(isolated_home, text)
    import yaml

    usage = disk_usage(Manifest.model_validate(yaml.safe_load(text)), isolated_home / "models")
    base, lora_size = tiny_gguf.stat().st_size, lora.stat().st_size
    assert [(r.name, r.bytes, r.personas) for r in usage.models] == [("small", base, 3)]
    assert [(r.bytes, r.personas) for r in usage.adapters] == [(lora_size, 1)]
    assert usage.total == base + lora_size and usage.unshared == 3 * base
    result = mirador("models", "du")
    assert result.returncode == 0, result.stderr
    assert "small" in result.stdout and "lora.gguf" in result.stdout
    assert "sharing saves" in result.stdout and "smollm2-135m" in result.stdout


def test_load_without_a_server_measures_the_model(isolated_home: Path, tiny_gguf: Path) -> None:
    write_manifest(isolated_home, tiny_manifest(tiny_gguf))
    result = mirador("models", "load", "brief_helper")  # a persona names its base model
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("loaded small in ") and "took" in result.stdout
    assert "No 'mirador serve' is running" in result.stdout
    ps = mirador("models", "ps")
    assert "Budget:" in ps.stdout and "small" in ps.stdout and "(measured)" in ps.stdout
    assert mirador("models", "pin", "helper").returncode == 0
    assert "Pinned: small." in mirador("models", "ps").stdout
    assert mirador("models", "pin", "small", "--off").returncode == 0
    assert "Pinned: none." in mirador("models", "ps").stdout
    unknown = mirador("models", "load", "nope")
    assert unknown.returncode == 1 and "neither a model nor a persona" in unknown.stderr


@pytest.fixture
def running_server(isolated_home: Path, tiny_gguf: Path) -> Iterator[str]:
    port = free_port()
    (isolated_home / "config.yaml").write_text(f"server: {{port: {port}}}\n")
    write_manifest(isolated_home, tiny_manifest(tiny_gguf).replace(
        "models:\n", f"models:\n  - {{id: smollm2-135m, path: {tiny_gguf}, "
                     "context_length: 512}\n"))
    log = isolated_home / "serve.log"
    with log.open("wb") as sink, subprocess.Popen(
            [sys.executable, "-m", "mirador", "serve"], stdout=subprocess.DEVNULL,
            stderr=sink, env=os.environ.copy()) as server:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server, log)
            yield url
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()



def test_ps_load_unload_and_pin_act_on_the_running_server(
        running_server: str, isolated_home: Path) -> None:
    result = mirador("models", "load", "helper")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("loaded small in the server")
    ps = mirador("models", "ps").stdout
    assert "small" in ps and "llamacpp" in ps and "priority 0" in ps
    assert mirador("models", "unload", "small").returncode == 0
    assert "small " not in mirador("models", "ps").stdout
    pinned = mirador("models", "pin", "small")
    assert "loaded and pinned in the server" in pinned.stdout
    assert json.loads((isolated_home / "models" / "pins.json").read_text()) == ["small"]
    assert "pinned" in mirador("models", "ps").stdout
