"""The composition root: builds an orchestrator with everything the settings turn on.

The CLI and the server both start here, so a feature wired in once (memory,
learning) works the same everywhere.
"""

from __future__ import annotations

from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings


def create_orchestrator(settings: Settings) -> Orchestrator:
    """An orchestrator over the manifest in the settings' home."""
    return Orchestrator(settings)
