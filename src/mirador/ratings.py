"""The Python API for ratings: rate an answer from a script, as `mirador rate` does,
or through a running orchestrator, as `mirador chat` and the server do.

    from mirador.ratings import rate_answer
    rate_answer(load_settings(), None, 5, note="spot on")   # the last answer

    stored = await rate_live(orchestrator, done.answer_id, 4)  # in the process that answered

The rating is stored for learning first; then memory is told, so the memory
of that answer carries its rating too (`mirador.memory.set_rating`).
`rate_live` goes through the orchestrator's own learner and memory, once that
answer's record is written, so it never races the background writer nor opens
a second ratings database or Chroma client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mirador.errors import MiradorError
from mirador.learning.learner import Learner
from mirador.learning.store import Rating
from mirador.memory.memory import Memory
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings

RatingHook = Callable[[str, int], None]
log = logging.getLogger("mirador.learning")


def rate_answer(settings: Settings, answer_id: str | None, rating: int,
                note: str | None = None) -> Rating:
    """Rate an answer 1-5 (the last one when `answer_id` is None) and tell memory too."""
    with Learner.for_ratings(settings) as learner:
        learner.rating_hooks.extend(memory_rating_hooks(settings))
        return learner.rate(answer_id, rating, note)


async def rate_live(orchestrator: Orchestrator, answer_id: str | None, rating: int,
                    note: str | None = None) -> Rating:
    """Rate an answer of this running orchestrator (the last one when `answer_id` is None)
    through its learner and memory, after the answer's record is written."""
    await orchestrator.recorded(answer_id)  # None: every answer still being recorded
    learner = orchestrator.chooser
    if isinstance(learner, Learner):  # its bandit learns at once: no replay needed
        stored = await asyncio.to_thread(learner.rate, answer_id, rating, note)
    else:  # learning is off in this process; the ratings database still keeps ratings
        stored = await asyncio.to_thread(_rate_once, orchestrator.settings, answer_id,
                                         rating, note)
    memory = orchestrator.context
    if isinstance(memory, Memory):
        await asyncio.to_thread(_tell(memory.set_rating), stored.answer_id, rating)
    return stored


def _rate_once(settings: Settings, answer_id: str | None, rating: int,
               note: str | None) -> Rating:
    with Learner.for_ratings(settings) as learner:
        return learner.rate(answer_id, rating, note)


def memory_rating_hooks(settings: Settings) -> list[RatingHook]:
    """Memory's rating setter, unless memory is turned off."""
    if not settings.config.memory.enabled:
        return []
    from mirador import memory

    return [_tell(lambda answer_id, rating: memory.set_rating(settings, answer_id, rating))]


def _tell(set_rating: Callable[[str, int], object]) -> RatingHook:
    """`set_rating`, with a memory that cannot take the rating reported, not raised:
    the rating is safe in the ratings database already."""
    def tell_memory(answer_id: str, rating: int) -> None:
        try:
            set_rating(answer_id, rating)
        except MiradorError as exc:
            log.warning("the rating is kept for learning, but memory could not take it: %s",
                        exc)

    return tell_memory
