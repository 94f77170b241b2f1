"""The eviction policy: which models to unload, decided from plain facts.

Pure decisions, no I/O and no asyncio: given what each loaded model takes,
its priority, whether it is pinned, answering or loading, when it was last
used and the time now (an injected clock), the policy says which idle models
to evict to free room, which have outlived their keep-alive, and when the
next one will. The model manager acts on the answers.

    policy = EvictionPolicy(clock.now)
    policy.victims(held, shortfall=64 << 20, keep=None, background=False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_WAIT = 30.0  # the idle loop looks again at least this often (a pin may change meanwhile)
MIN_WAIT = 0.05


@dataclass(frozen=True)
class Held:
    """What the policy knows about one loaded (or loading, or unloading) model."""

    model_id: str
    bytes: int
    priority: int = 0
    last_used: float = 0.0
    busy: bool = False  # answering a request
    ready: bool = True  # not loading or unloading
    pinned: bool = False
    protected_until: float = 0.0  # warmed or guessed for a query: guesses leave it alone
    keep_alive: float | None = None  # seconds idle before it expires (None: never)

    @property
    def idle(self) -> bool:
        return self.ready and not self.busy


class EvictionPolicy:
    """Chooses what to evict and what has expired, at the time `clock()` says."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    def victims(self, held: Sequence[Held], shortfall: int, keep: str | None,
                background: bool) -> list[str] | None:
        """Idle models to evict (unprotected, lowest priority, least recently used first)
        that free at least `shortfall` bytes together; None if they cannot. `keep` is never
        chosen; a `background` load (a guess) never takes a protected model."""
        now = self.clock()
        idle = [h for h in held if h.model_id != keep and h.idle and not h.pinned
                and not (background and h.protected_until > now)]
        idle.sort(key=lambda h: (h.protected_until > now, h.priority, h.last_used))
        chosen, freed = [], 0
        for candidate in idle:
            if freed >= shortfall:
                break
            chosen.append(candidate.model_id)
            freed += candidate.bytes
        return chosen if freed >= shortfall else None

    @staticmethod
    def may_free(held: Sequence[Held], keep: str | None) -> bool:
        """Whether waiting can help: some other model is answering, loading or unloading."""
        return any(h.model_id != keep and not h.idle for h in held)

    def expired(self, held: Sequence[Held]) -> list[str]:
        """Idle, unpinned models whose keep-alive has run out since their last use."""
        now = self.clock()
        return [h.model_id for h in held if h.idle and not h.pinned
                and h.keep_alive is not None and now - h.last_used >= h.keep_alive]

    def next_expiry(self, held: Sequence[Held]) -> float:
        """Seconds until the idle loop should look again: 0 when a model is due now, else
        until the next keep-alive runs out, within [MIN_WAIT, MAX_WAIT]. Busy models are
        looked at when they finish."""
        now = self.clock()
        due = min((h.last_used + h.keep_alive - now for h in held
                   if h.idle and not h.pinned and h.keep_alive is not None), default=MAX_WAIT)
        return 0.0 if due <= 0 else min(max(due, MIN_WAIT), MAX_WAIT)

    def expires_in(self, last_used: float | None, keep_alive: float | None) -> float | None:
        """Seconds until a model idle since `last_used` expires (None: never, or the
        keep-alive itself for a model not loaded)."""
        if keep_alive is None or last_used is None:
            return keep_alive
        return max(0.0, last_used + keep_alive - self.clock())
