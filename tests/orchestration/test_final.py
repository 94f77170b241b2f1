"""`final` (what `mirador ask` reads an answer with) ends the stream when its reader fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mirador.orchestration.events import Event, Token, final
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings


class ReaderGone(Exception):
    pass


async def test_a_reader_that_fails_releases_the_model(settings: Settings, tiny_gguf: Path) -> None:
    orchestrator = Orchestrator(settings)

    def show(event: Event) -> None:
        if isinstance(event, Token):
            raise ReaderGone  # as a closed pipe or Ctrl-C would, mid-answer

    with pytest.raises(ReaderGone):
        try:
            await final(orchestrator.process("Tell me a long story", model=str(tiny_gguf),
                                             stages=["quick_response"]), show)
        finally:  # as `async with orchestrator` closes it, the failure still in flight: the
            # abandoned stage held its model, and closing waited for it forever before
            await asyncio.wait_for(orchestrator.aclose(), 30)
