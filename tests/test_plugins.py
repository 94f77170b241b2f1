"""Plugins: a real package installed by pip, found through its entry point, used end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirador.backends import check_backend_config, entry_for_reference
from mirador.catalog.manifest import ModelEntry, load_manifest
from mirador.errors import ConfigError
from mirador.models.check import check_manifest
from mirador.settings import load_settings

PLUGIN_SOURCE = Path(__file__).parent / "data" / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/data/plugin_pkg installed by pip into a folder of its own (no network)."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN_SOURCE, work / "src")  # the build writes beside its sources
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=240)
    return site


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    """An installed distribution whose `mirador` entry point fails to import."""
    site = tmp_path / "broken-site"
    info = site / "mirador_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mirador-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mirador]\nbroken = mirador_broken\n")
    (site / "mirador_broken.py").write_text("import no_such_module_here\n")
    return site


def mirador(*args: str, sites: tuple[Path, ...]) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([*map(str, sites), *sys.path])
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=240, env=env)


def ask(*args: str, sites: tuple[Path, ...]) -> subprocess.CompletedProcess[str]:
    return mirador("ask", "--local", "--no-memory", "--quiet", "--stages", "quick_response",
                   *args, sites=sites)


def test_a_plugin_backend_answers_from_the_manifest(isolated_home: Path,
                                                     plugin_site: Path) -> None:
    (isolated_home / "manifest.yaml").write_text(
        "models:\n  - id: mirror\n    backend: reverse\n    name: anything\n")
    (isolated_home / "config.yaml").write_text(
        "default_model: mirror\nbackends:\n  reverse:\n    marker: 'esrever:'\n")
    result = ask("hello there", sites=(plugin_site,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "esrever: ereht olleh"  # its config section reached it


def test_a_plugin_backend_has_its_own_reference_syntax(plugin_site: Path) -> None:
    result = ask("--model", "reverse:whatever", "abc", sites=(plugin_site,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reversed: cba"


def test_a_plugin_config_section_is_validated_by_the_plugin(isolated_home: Path,
                                                             plugin_site: Path) -> None:
    (isolated_home / "config.yaml").write_text("backends:\n  reverse:\n    markr: x\n")
    result = ask("--model", "reverse:whatever", "abc", sites=(plugin_site,))
    assert result.returncode == 1
    assert "config.yaml: backends.reverse.markr: unknown field" in result.stderr
    assert "Traceback" not in result.stderr


def test_mirador_plugins_lists_what_each_registered(plugin_site: Path) -> None:
    result = mirador("plugins", sites=(plugin_site,))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["reverse", "mirador-reverse", "0.1.0"]
    assert "backends: reverse" in result.stdout and "chains: quick-again" in result.stdout
    assert "embedders: letters" in result.stdout
    chains = mirador("chains", sites=(plugin_site,))
    assert "quick-again" in chains.stdout  # a plugin's chain is in the manifest


def test_a_broken_plugin_is_named_not_a_traceback(plugin_site: Path, broken_site: Path) -> None:
    sites = (plugin_site, broken_site)
    listed = mirador("plugins", sites=sites)
    assert listed.returncode == 1
    assert "BROKEN: ModuleNotFoundError: No module named 'no_such_module_here'" in listed.stdout
    assert "backends: reverse" in listed.stdout  # the healthy one is still listed
    result = ask("--model", "reverse:whatever", "abc", sites=sites)
    assert result.returncode == 1
    assert ("plugin 'broken' (mirador-broken 0.1) is broken: ModuleNotFoundError" in result.stderr
            and "pip uninstall mirador-broken" in result.stderr)
    assert "Traceback" not in result.stderr


def test_without_plugins_the_command_says_how_to_add_one() -> None:
    result = mirador("plugins", sites=())
    assert result.returncode == 0 and "No plugins installed" in result.stdout


def test_a_config_section_no_backend_claims_is_an_error(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("backends:\n  olama:\n    host: x\n")
    with pytest.raises(ConfigError, match=r"backends.olama: no backend named 'olama'"):
        check_backend_config(load_settings())
    (isolated_home / "config.yaml").write_text("backends:\n  olama: 3\n")
    with pytest.raises(ConfigError, match=r"backends.olama must be a mapping"):
        load_settings()


@pytest.mark.parametrize(("ref", "expected"), [
    ("ollama:llama3.2", ModelEntry(id="ollama:llama3.2", backend="ollama", name="llama3.2")),
    ("openai:gpt-x", ModelEntry(id="openai:gpt-x", backend="openai", name="gpt-x")),
    ("/m/tiny.gguf", ModelEntry(id="tiny", backend="llamacpp", path="/m/tiny.gguf")),
    ("smollm2-135m", None),
    ("ollama:", None),
])
def test_each_backend_recognises_its_own_references(ref: str,
                                                    expected: ModelEntry | None) -> None:
    assert entry_for_reference(ref) == expected


def test_check_reports_what_a_backend_needs(isolated_home: Path) -> None:
    path = isolated_home / "manifest.yaml"
    path.write_text("models:\n  - id: m\n    backend: llamacpp\n    name: llama3.2\n")
    problems = check_manifest(load_manifest(path), load_settings())
    assert ("model 'm' runs on llamacpp: give it a 'path' to a GGUF file or a 'package' that "
            "ships one") in problems


def test_a_backend_refuses_an_entry_without_what_it_needs(isolated_home: Path) -> None:
    from mirador.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(load_settings())
    with pytest.raises(ConfigError, match=r"model 'm' runs on llamacpp: give it a 'path'"):
        backend.model_path(ModelEntry(id="m", name="llama3.2"))


def test_a_plugin_embedder_is_chosen_by_memory_embedder(isolated_home: Path,
                                                        plugin_site: Path) -> None:
    (isolated_home / "config.yaml").write_text("memory:\n  embedder: letters\n")
    code = ("from mirador.embeddings import create_embedder; from mirador.settings import "
            "load_settings; e = create_embedder(load_settings()); "
            "print(e.dimension, round(float(e.embed(['ab', 'ba'])[0] @ e.embed(['ba'])[0]), 3))")
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_site), *sys.path])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["26", "1.0"]
