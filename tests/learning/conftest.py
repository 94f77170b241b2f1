"""Fixtures for learning: the real embedding model (loaded once), stores and learners."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mirador.catalog.manifest import Manifest, builtin_manifest_data, load_manifest
from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.learning import Learner, LearningStore
from mirador.learning.querytypes import (
    SHIPPED_MODEL,
    QueryClassifier,
    load_seeds,
    seed_examples,
)


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """all-MiniLM-L6-v2 from its PyPI package, run with numpy."""
    return MiniLMEmbedder.load()


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return load_manifest(None)


@pytest.fixture(scope="session")
def classifier(embedder: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory
               ) -> QueryClassifier:
    cache = tmp_path_factory.mktemp("seed-cache")
    return QueryClassifier(embedder, seed_examples(load_seeds(), embedder, cache, SHIPPED_MODEL))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LearningStore]:
    opened = LearningStore.open(tmp_path / "learning.db")
    yield opened
    opened.close()


@pytest.fixture
def learner(store: LearningStore, manifest: Manifest, classifier: QueryClassifier
            ) -> Iterator[Learner]:
    fresh = QueryClassifier(classifier.embedder, classifier.seeds)  # no history of other tests
    made = Learner(store, manifest, lambda: fresh, seed=7)
    yield made
    made.close()


def tiny_persona_manifest(tiny_gguf: Path) -> str:
    """A home manifest that runs every built-in persona on the tiny model, four tokens each."""
    personas = [{"id": p["id"], "model": "tiny", "system": p.get("system"),
                 "options": {"max_tokens": 4, "temperature": 0.0}}
                for p in builtin_manifest_data()["personas"]]
    return yaml.safe_dump({
        "models": [{"id": "tiny", "backend": "llamacpp", "path": str(tiny_gguf),
                    "context_length": 512}],
        "personas": personas})


@pytest.fixture
def tiny_home(isolated_home: Path, tiny_gguf: Path) -> Path:
    """The test's home, where every persona (so every chain) runs on the tiny model."""
    (isolated_home / "manifest.yaml").write_text(tiny_persona_manifest(tiny_gguf))
    return isolated_home
