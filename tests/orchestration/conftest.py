"""Preload's tests run on the model manager's real GGUF fixtures."""

from tests.models.conftest import make_manager, sized_ggufs

__all__ = ["make_manager", "sized_ggufs"]
