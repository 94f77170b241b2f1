"""The composition root: builds an orchestrator with everything the settings turn on.

The CLI and the server both start here, so a feature wired in once (memory,
learning) works the same everywhere.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mirador.errors import LearningStoreError
from mirador.models.manifest import Manifest, load_manifest
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings

if TYPE_CHECKING:
    from mirador.embeddings import Embedder
    from mirador.learning import Learner

log = logging.getLogger("mirador")


def create_orchestrator(settings: Settings) -> Orchestrator:
    """An orchestrator over the manifest in the settings' home."""
    manifest = load_manifest(settings.manifest_path)
    embedder = shared_embedder(settings)  # one MiniLM for learning and memory, loading now
    learner = create_learner(settings, manifest, embedder)
    orchestrator = Orchestrator(settings, manifest, chooser=learner,
                                sinks=[learner] if learner is not None else [],
                                embedder=embedder)  # the quality gate judges with it too
    from mirador.models.preload import attach

    attach(orchestrator)  # predictive preload, and the usage it learns from
    from mirador import memory

    memory.attach(orchestrator, embedder)  # recall for the later stages; answers remembered
    return orchestrator


def shared_embedder(settings: Settings) -> Embedder | None:
    """The embedder, loading in the background, when learning or memory needs one."""
    if not (settings.config.learning.enabled or settings.config.memory.enabled):
        return None
    from mirador.embeddings import load_embedder

    return load_embedder(settings)


def create_learner(settings: Settings, manifest: Manifest,
                   embedder: Embedder | None = None) -> Learner | None:
    """The learner that picks chains and logs answers; None when learning is off or broken.

    A ratings database that cannot be read turns learning off for this run (with a
    warning that says what to do) rather than costing the answer.
    """
    if not settings.config.learning.enabled:
        return None
    from mirador.learning import Learner

    try:
        return Learner.open(settings, manifest, embedder=embedder)
    except LearningStoreError as exc:
        log.warning("learning is off for this answer: %s", exc)
        return None
