"""The eviction policy, pure: decisions from sizes, priorities, pins, busy state and a clock."""

from __future__ import annotations

import asyncio

from mirador.models.clock import ManualClock
from mirador.models.policy import MAX_WAIT, MIN_WAIT, EvictionPolicy, Held

NOW = 100.0


def policy() -> EvictionPolicy:
    return EvictionPolicy(lambda: NOW)


def test_victims_go_lowest_priority_first_then_least_recently_used() -> None:
    held = [Held("old_high", 10, priority=5, last_used=1), Held("new_low", 10, last_used=50),
            Held("old_low", 10, last_used=10)]
    assert policy().victims(held, 10, keep=None, background=False) == ["old_low"]
    assert policy().victims(held, 15, keep=None, background=False) == ["old_low", "new_low"]
    assert policy().victims(held, 30, keep=None, background=False) == [
        "old_low", "new_low", "old_high"]


def test_pinned_busy_loading_and_kept_models_are_never_victims() -> None:
    held = [Held("pinned", 10, pinned=True), Held("busy", 10, busy=True),
            Held("loading", 10, ready=False), Held("kept", 10), Held("idle", 10)]
    assert policy().victims(held, 10, keep="kept", background=False) == ["idle"]
    assert policy().victims(held, 11, keep="kept", background=False) is None


def test_a_guess_never_takes_a_protected_model_and_a_real_load_takes_it_last() -> None:
    held = [Held("warmed", 10, last_used=1, protected_until=NOW + 5),
            Held("plain", 10, last_used=90)]
    assert policy().victims(held, 20, keep=None, background=True) is None
    assert policy().victims(held, 10, keep=None, background=True) == ["plain"]
    assert policy().victims(held, 20, keep=None, background=False) == ["plain", "warmed"]
    expired = [Held("warmed", 10, protected_until=NOW - 1)]
    assert policy().victims(expired, 10, keep=None, background=True) == ["warmed"]


def test_nothing_to_free_needs_no_victims() -> None:
    assert policy().victims([], 0, keep=None, background=True) == []
    assert policy().victims([], 1, keep=None, background=True) is None


def test_waiting_helps_only_while_another_model_is_busy_or_moving() -> None:
    assert not policy().may_free([Held("idle", 1), Held("me", 1, busy=True)], keep="me")
    assert policy().may_free([Held("busy", 1, busy=True)], keep=None)
    assert policy().may_free([Held("unloading", 1, ready=False)], keep=None)


def test_keep_alive_expires_idle_unpinned_models_only() -> None:
    held = [Held("due", 1, last_used=NOW - 10, keep_alive=10),
            Held("fresh", 1, last_used=NOW - 9, keep_alive=10),
            Held("forever", 1, last_used=0, keep_alive=None),
            Held("pinned", 1, last_used=0, keep_alive=1, pinned=True),
            Held("busy", 1, last_used=0, keep_alive=1, busy=True)]
    assert policy().expired(held) == ["due"]
    assert policy().next_expiry(held) == 0, "one is due now"
    assert policy().next_expiry(held[1:]) == 1.0, "fresh expires in a second"
    soon = [Held("soon", 1, last_used=NOW - 9.99, keep_alive=10)]
    assert policy().next_expiry(soon) == MIN_WAIT, "never a busy loop"
    assert policy().next_expiry(held[2:]) == MAX_WAIT, "nothing will: look again later"


def test_expires_in_counts_down_from_the_last_use() -> None:
    assert policy().expires_in(NOW - 4, 10) == 6
    assert policy().expires_in(NOW - 40, 10) == 0
    assert policy().expires_in(None, 10) == 10, "not loaded: the whole keep-alive"
    assert policy().expires_in(NOW, None) is None


async def test_a_manual_clock_wakes_waits_only_when_advanced_or_changed() -> None:
    clock, changed = ManualClock(), asyncio.Event()
    start = clock.now()
    waiting = asyncio.ensure_future(clock.wait(changed, 5))
    await asyncio.sleep(0)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.1)
    await asyncio.wait_for(waiting, 1)
    assert clock.now() == start + 5
    forever = asyncio.ensure_future(clock.wait(changed, None))
    clock.advance(1e9)
    await asyncio.sleep(0)
    assert not forever.done()
    changed.set()
    await asyncio.wait_for(forever, 1)
