"""`mirador serve` trains by itself when due: a real training subprocess, an injected clock
and a scripted battery; answers keep being served while it trains."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest

from mirador.agents.clock import ManualClock
from mirador.energy.power import ScriptedPower
from mirador.learning.adapters import AdapterStore
from mirador.settings import Settings
from mirador.training.schedule import read_state, state_path
from tests.server.conftest import ServerThread
from tests.training.conftest import STYLED, write_history

TRAINING = {"training": {"after_ratings": 8, "every_hours": 6, "check_every": 60,
                         "max_steps": 2, "quality_questions": 1, "quality_tokens": 24}}


def wait_for(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


def training_child() -> bool:
    return any("train" in child.cmdline() for child in psutil.Process().children(True)
               if child.is_running())


@pytest.mark.timeout(1800)  # a real run: minutes on two busy cores
def test_serve_trains_when_due_and_keeps_answering(make_server: Callable[..., ServerThread]
                                                   ) -> None:
    clock = ManualClock()
    server = make_server(config=TRAINING, clock=clock)
    home = server.runtime.settings.home
    time.sleep(0.5)  # the first look, at start: nothing rated, nothing written
    assert not state_path(home).exists()
    write_history(home, STYLED)  # eight answers rated 5
    clock.advance(60)
    wait_for(training_child, 60)
    # the server answers while it trains (the run is another process)
    assert httpx.get(f"{server.url}/mirador/health", timeout=120).json()["status"] == "ok"
    state = wait_for(lambda: read_state(home).last_run_at and read_state(home), 1500)
    assert state.outcome["exit_code"] == 0, state.outcome
    assert state.outcome["message"].split()[0] in ("deployed", "rejected"), state.outcome
    assert state.rated_at_last_run == 8 and state.outcome["because"] == ("8 new rating(s) "
                                                                         "since the last run")
    (version,) = AdapterStore(home, "quick").versions()
    assert "general_matched_after" in version.meta["metrics"]  # the gate's questions ran
    listed = subprocess.run([sys.executable, "-m", "mirador", "adapters", "ls"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "MIRADOR_HOME": str(home)})
    assert "last scheduled run: exit 0" in listed.stdout, listed.stderr
    clock.advance(60)
    again = wait_for(lambda: read_state(home).waiting and read_state(home), 30)
    assert again.waiting == "0 new rating(s) of the 8 that start a run"
    assert httpx.get(f"{server.url}/mirador/health", timeout=10).status_code == 200


def test_on_battery_it_waits(settings: Settings) -> None:
    from mirador.server.training_schedule import TrainingSchedule

    write_history(settings.home, STYLED)
    settings = settings.__class__(settings.home, settings.config.model_copy(update={
        "training": settings.config.training.model_copy(update={"after_ratings": 8})}),
        settings.env)
    power = ScriptedPower(percent=35.0, plugged=False)
    state = asyncio.run(TrainingSchedule(settings, ManualClock(), power).check())
    assert state.waiting == ("on battery (battery 35%, on battery (scripted)); training waits "
                             "for power")
    assert state.last_run_at is None and AdapterStore(settings.home, "quick").versions() == []
