"""The server keeps running when the chain chooser cannot load, and says why."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from mirador.errors import LearningError
from mirador.server.app import _ready_chooser


def orchestrator_whose_classifier_raises(error: Exception) -> Any:
    def classifier(seconds: float) -> None:
        raise error

    return SimpleNamespace(chooser=SimpleNamespace(classifier=classifier))


async def test_a_known_failure_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mirador"):
        await _ready_chooser(orchestrator_whose_classifier_raises(LearningError("no seeds")))
    [record] = [r for r in caplog.records if "chooser is not ready" in r.getMessage()]
    assert record.levelno == logging.WARNING and "no seeds" in record.getMessage()


@pytest.mark.parametrize("debug", ["0", "1"])
async def test_a_bug_is_logged_with_its_traceback_under_debug(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, debug: str) -> None:
    monkeypatch.setenv("MIRADOR_DEBUG", debug)
    with caplog.at_level(logging.ERROR, logger="mirador"):
        await _ready_chooser(orchestrator_whose_classifier_raises(ValueError("bad vector")))
    [record] = [r for r in caplog.records if "default routing" in r.getMessage()]
    assert "ValueError: bad vector" in record.getMessage()
    assert (record.exc_info is not None) == (debug == "1")
