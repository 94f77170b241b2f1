"""When serve trains by itself: N new ratings, at most every few hours, never on battery."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mirador.energy.power import PowerState
from mirador.errors import TrainingError
from mirador.settings import TrainingConfig
from mirador.training.schedule import (
    ScheduleState,
    decide,
    describe,
    read_state,
    state_path,
    write_state,
)

PLUGGED = PowerState(80.0, True, "scripted")
BATTERY = PowerState(80.0, False, "scripted")
CONFIG = TrainingConfig(after_ratings=5, every_hours=6)
HOUR = 3600.0


def test_it_trains_after_n_new_ratings_at_most_every_few_hours_and_never_on_battery() -> None:
    fresh = ScheduleState()
    assert decide(CONFIG, fresh, 0.0, 4, PLUGGED).reason == ("4 new rating(s) of the 5 that "
                                                            "start a run")
    assert decide(CONFIG, fresh, 0.0, 5, PLUGGED).due
    on_battery = decide(CONFIG, fresh, 0.0, 5, BATTERY)
    assert not on_battery.due and on_battery.reason.startswith("on battery (battery 80%")
    ran = ScheduleState(last_run_at=10 * HOUR, rated_at_last_run=5)
    assert not decide(CONFIG, ran, 11 * HOUR, 9, PLUGGED).due  # 4 new
    early = decide(CONFIG, ran, 11 * HOUR, 10, PLUGGED)
    assert not early.due and "next in 5.0 h" in early.reason
    assert decide(CONFIG, ran, 16 * HOUR, 10, PLUGGED).due
    off = TrainingConfig(schedule=False)
    assert not decide(off, fresh, 0.0, 1000, PLUGGED).due


def test_the_settings_are_validated() -> None:
    for bad in ({"after_ratings": 0}, {"every_hours": 0.1}, {"check_every": 0},
                {"quality_questions": -1}, {"threads": 0}, {"every_hour": 6}):
        with pytest.raises(ValidationError):
            TrainingConfig.model_validate(bad)


def test_the_state_is_kept_and_described(tmp_path: Path) -> None:
    assert read_state(tmp_path) == ScheduleState()
    state = ScheduleState(100.0, 5, {"exit_code": 0, "message": "deployed adapter v0001",
                                     "seconds": 42.0}, 200.0, "0 new rating(s) of the 5")
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state
    assert describe(state) == ["last scheduled run: exit 0, 42s: deployed adapter v0001",
                               "schedule waiting: 0 new rating(s) of the 5"]
    state_path(tmp_path).write_text("{not json")
    with pytest.raises(TrainingError, match="delete it and the schedule starts afresh"):
        read_state(tmp_path)
