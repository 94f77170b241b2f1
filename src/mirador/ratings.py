"""The Python API for ratings: rate an answer from a script, as `mirador rate` does.

    from mirador.ratings import rate_answer
    rate_answer(load_settings(), None, 5, note="spot on")   # the last answer

The rating is stored for learning first; then memory is told, so the memory
of that answer carries its rating too (`mirador.memory.set_rating`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mirador.errors import MiradorError
from mirador.learning.learner import Learner
from mirador.learning.store import Rating
from mirador.settings import Settings

RatingHook = Callable[[str, int], None]
log = logging.getLogger("mirador.learning")


def rate_answer(settings: Settings, answer_id: str | None, rating: int,
                note: str | None = None) -> Rating:
    """Rate an answer 1-5 (the last one when `answer_id` is None) and tell memory too."""
    with Learner.for_ratings(settings) as learner:
        learner.rating_hooks.extend(memory_rating_hooks(settings))
        return learner.rate(answer_id, rating, note)


def memory_rating_hooks(settings: Settings) -> list[RatingHook]:
    """Memory's rating setter, unless memory is turned off."""
    if not settings.config.memory.enabled:
        return []

    def tell_memory(answer_id: str, rating: int) -> None:
        from mirador import memory

        try:
            memory.set_rating(settings, answer_id, rating)
        except MiradorError as exc:  # the rating is safe in the ratings database already
            log.warning("the rating is kept for learning, but memory could not take it: %s",
                        exc)

    return [tell_memory]
