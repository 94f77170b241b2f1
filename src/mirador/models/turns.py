"""Turns on a model whose backend serves a limited number of streams at once.

A backend that declares `takes_turns` (llama.cpp's high-level API: one
sequence per context) gets a first-in-first-out queue per loaded model; the
reader is told when its turn starts (`Admitted`), so time spent waiting is
bounded on its own (`models.queue_wait`) and not charged to first-token timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mirador.backends import turns_of
from mirador.errors import ModelBusyError
from mirador.models.slots import Admitted, Slot


@asynccontextmanager
async def turn(slot: Slot, queue_wait: float) -> AsyncIterator[Admitted]:
    """Wait, first in first out, for a turn on `slot`'s model; hold it while inside."""
    if slot.turns is None:
        takes_turns = turns_of(slot.backend)
        if takes_turns is None:
            yield Admitted()
            return
        slot.turns = asyncio.Semaphore(max(1, takes_turns.sequences(slot.model)))
    turns, ahead, asked = slot.turns, slot.busy - 1, time.monotonic()
    slot.waiting += 1
    try:
        async with asyncio.timeout(queue_wait):
            await turns.acquire()
    except TimeoutError:
        raise ModelBusyError(
            f"waited {queue_wait:.0f} s for a turn on model '{slot.model.id}', busy with "
            f"{ahead} other request(s); retry later, or raise models.queue_wait in "
            "config.yaml") from None
    finally:
        slot.waiting -= 1
    try:
        yield Admitted(waited=time.monotonic() - asked, ahead=ahead)
    finally:
        turns.release()
