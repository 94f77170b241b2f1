"""Waiting for llama.cpp's generation thread: a bug there is logged, not suppressed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mirador.backends.llamacpp import _worker_done


async def test_an_unexpected_failure_is_logged_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    worker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    worker.set_exception(RuntimeError("Event loop is closed"))
    with caplog.at_level(logging.ERROR, logger="mirador"):
        await _worker_done(worker)
    [record] = [r for r in caplog.records if "generation thread" in r.getMessage()]
    assert "RuntimeError: Event loop is closed" in record.getMessage()


async def test_cancelling_the_wait_propagates() -> None:
    worker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(_worker_done(worker))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not worker.cancelled(), "the shield keeps the worker's future for the next waiter"
    worker.set_result(None)
