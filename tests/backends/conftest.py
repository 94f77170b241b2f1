"""Backends' fixtures: the llama.cpp backend one request at a time, beside the shared one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.settings import Settings


def with_sequences(settings: Settings, sequences: int) -> Settings:
    """`settings` with `backends.llamacpp.sequences` set to `sequences`."""
    config = settings.config.model_copy(deep=True)
    config.backends.llamacpp.sequences = sequences
    return replace(settings, config=config)


@pytest.fixture(scope="session")
async def serial_backend(session_settings: Settings) -> AsyncIterator[LlamaCppBackend]:
    """A llama.cpp backend with `sequences: 1`: every request on the `Llama` context."""
    backend = LlamaCppBackend(with_sequences(session_settings, 1))
    yield backend
    await backend.aclose()
