"""Background: a value loaded in a daemon thread, its failure raised where it is used."""

from __future__ import annotations

import threading

import pytest

from mirador.background import Background


def test_result_is_the_loaded_value_and_loading_runs_once() -> None:
    calls = []
    loading = Background(lambda: calls.append(1) or "value", "test-load")
    assert loading.result(5) == "value" and loading.result() == "value"
    assert calls == [1] and loading.ready and loading.loaded() == "value"


def test_a_failure_is_raised_by_result_with_a_note_naming_the_thread() -> None:
    def fail() -> str:
        raise ValueError("no model file")

    loading = Background(fail, "test-fail")
    with pytest.raises(ValueError, match="no model file") as caught:
        loading.result(5)
    assert any("test-fail" in note for note in caught.value.__notes__)
    assert loading.ready and loading.loaded() is None


def test_a_lazy_load_starts_at_first_use_and_times_out_while_running() -> None:
    release = threading.Event()
    loading = Background(lambda: release.wait(5) and "late", "test-lazy", start=False)
    assert not loading.ready
    with pytest.raises(TimeoutError):
        loading.result(0.05)  # started by this call, still running
    release.set()
    assert loading.result(5) == "late"


def test_of_is_loaded_already() -> None:
    assert Background.of(3, "test-of").result(0) == 3


async def test_aresult_waits_without_blocking_the_loop() -> None:
    assert await Background(lambda: 7, "test-async").aresult() == 7
