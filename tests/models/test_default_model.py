"""config.yaml's `default_model`: honoured for the built-in personas, or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.catalog.manifest import manifest_for
from mirador.errors import ConfigError
from mirador.settings import load_settings

OTHER = """models:
  - {id: other, backend: ollama, name: llama3.2}
personas:
  - {id: analyst, model: smollm2-135m, system: Find what the first answer missed.}
"""


def test_built_in_personas_follow_default_model(isolated_home: Path) -> None:
    (isolated_home / "manifest.yaml").write_text(OTHER)
    (isolated_home / "config.yaml").write_text("default_model: other\n")
    manifest = manifest_for(load_settings())
    assert manifest.persona("quick").model == "other"
    assert manifest.persona("synthesizer").model == "other"
    assert manifest.persona("analyst").model == "smollm2-135m"  # the user's own keeps its model


def test_without_default_model_the_embedded_model_answers(isolated_home: Path) -> None:
    assert manifest_for(load_settings()).persona("quick").model == "smollm2-135m"


def test_an_unknown_default_model_is_refused_with_the_known_ids(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text("default_model: nope\n")
    with pytest.raises(ConfigError, match="default_model 'nope' is not a model.*smollm2-135m"):
        manifest_for(load_settings())
