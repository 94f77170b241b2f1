"""When an answer recalls memory, and what each stage is shown of it.

Recall starts at the first token, never before it, so memory never delays the
first stage; the later stages are shown what it found. The exception is a
question that speaks of the person ("When is my dentist appointment?") when
some memory shares a word with it: what they told Mirador may be the answer, so
recall starts at once and the first stage waits for it, at most
`memory.first_stage_wait` seconds. Memory never costs the answer: a recall that
fails is reported and the stages go on without it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mirador.errors import MiradorError, report_unexpected
from mirador.orchestration.hooks import ContextSource, Query, Recollection
from mirador.orchestration.routing import speaks_of_me

log = logging.getLogger("mirador")
NOTHING_RECALLED = Recollection()


@dataclass(frozen=True)
class Recall:
    """Starts `context`'s recall for one answer and hands each stage what it found."""

    context: ContextSource | None
    first_stage_wait: float

    def start(self, query: Query) -> asyncio.Task[Recollection] | None:
        """Recall for `query`, in the background; None without a context source."""
        if self.context is None:
            return None
        task = asyncio.ensure_future(self.context.context_for(query))
        task.add_done_callback(_report)  # whether or not a stage waits for it
        return task

    async def early(self, query: Query) -> asyncio.Task[Recollection] | None:
        """Recall started before the first stage, for a question that speaks of the person
        when some memory shares a word with it."""
        if self.context is None or self.first_stage_wait <= 0 or not speaks_of_me(query.text):
            return None
        try:
            if not await self.context.might_know(query):
                return None
        except Exception as exc:  # memory must not cost the answer: recall reports it later
            report_unexpected(log, "looking for words the question shares with memory", exc)
            return None
        return self.start(query)

    async def for_first_stage(self, recall: asyncio.Task[Recollection] | None) -> Recollection:
        """The early recall if it is ready within `first_stage_wait`; else nothing (the
        later stages still get it)."""
        if recall is None:
            return NOTHING_RECALLED
        await asyncio.wait({recall}, timeout=self.first_stage_wait)
        return await found(recall) if recall.done() else NOTHING_RECALLED


async def found(recall: asyncio.Task[Recollection] | None) -> Recollection:
    """What `recall` found, waiting for it; nothing when it failed or there was none."""
    if recall is None:
        return NOTHING_RECALLED
    try:
        return await asyncio.shield(recall)
    except Exception:  # reported by _report; memory must not cost the answer
        return NOTHING_RECALLED


def _report(task: asyncio.Task[Recollection]) -> None:
    """Say why background for the later stages could not be recalled (they go on without)."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    assert exc is not None
    if isinstance(exc, MiradorError):
        log.warning("memory could not be recalled for this answer: %s", exc)
    else:
        report_unexpected(log, "recalling memory for this answer", exc)
