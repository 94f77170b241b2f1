"""config.yaml and manifest.yaml: defaults, and errors that name the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.catalog.manifest import load_manifest
from mirador.errors import ConfigError, ModelNotFoundError
from mirador.settings import load_settings


def test_defaults_without_any_file(isolated_home: Path) -> None:
    settings = load_settings()
    assert settings.home == isolated_home
    assert [s.name for s in settings.config.stages] == [
        "quick_response", "deep_analysis", "synthesis"]
    assert [s.confidence for s in settings.config.stages] == [0.6, 0.85, 0.95]
    manifest = load_manifest(settings.manifest_path)
    assert manifest.resolve("synthesizer").model.id == "smollm2-135m"
    assert {c.id for c in manifest.chains} >= {
        "life_optimization", "business_acceleration", "creative_breakthrough",
        "relationship_harmony", "technical_mastery", "strategic_synthesis", "rapid_decision"}


def test_unknown_config_field_is_named(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("stages:\n  - name: q\n    persona: quick\n"
                                               "    confidence: 0.5\n    temprature: 0.2\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "config.yaml" in message and "stages.0.temprature" in message
    assert "unknown field; remove it or check its spelling" in message


def test_wrong_type_is_named(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("backends:\n  llamacpp:\n    n_ctx: lots\n")
    with pytest.raises(ConfigError, match=r"config.yaml: backends.llamacpp.n_ctx: .*'lots'"):
        load_settings()


def test_broken_yaml_names_the_line(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("color: auto\nstages: [\n")
    with pytest.raises(ConfigError, match=r"config.yaml: .* at line \d+"):
        load_settings()


def test_user_manifest_adds_and_replaces(isolated_home: Path, tmp_path: Path) -> None:
    (isolated_home / "manifest.yaml").write_text(
        "models:\n  - id: big\n    backend: ollama\n    name: llama3.2\n"
        "personas:\n  - id: quick\n    model: big\n    system: Be quick.\n")
    manifest = load_manifest(isolated_home / "manifest.yaml")
    assert manifest.resolve("quick").model.name == "llama3.2"
    assert manifest.resolve("quick").system == "Be quick."
    assert manifest.resolve("analyst").model.id == "smollm2-135m"


@pytest.mark.parametrize(("text", "expected"), [
    ("personas:\n  - id: p\n    model: nowhere\n", "'nowhere', which is neither a model"),
    ("models:\n  - id: quick\n    path: /x.gguf\n", "duplicate id 'quick'"),
    ("personas:\n  - id: a\n    model: b\n  - id: b\n    model: a\n", "persona cycle"),
    ("models:\n  - id: m\n    backend: ollama\n", "give it the 'name'"),
    ("chains:\n  - id: c\n    steps: [ghost]\n", "step 'ghost' is not a persona"),
    ("modles: []\n", "modles: unknown field"),
])
def test_manifest_mistakes_are_explained(isolated_home: Path, text: str, expected: str) -> None:
    path = isolated_home / "manifest.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_unknown_persona_lists_the_known_ones(isolated_home: Path) -> None:
    manifest = load_manifest(None)
    with pytest.raises(ModelNotFoundError, match=r"persona 'ghost'.*known: quick, analyst"):
        manifest.persona("ghost")
