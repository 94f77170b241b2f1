"""Orchestration fixtures: the tiny sized GGUFs and budgeted managers the model tests use
(preload plans over them)."""

from __future__ import annotations

from tests.models.conftest import make_manager, sized_ggufs  # noqa: F401  (fixtures, shared)
