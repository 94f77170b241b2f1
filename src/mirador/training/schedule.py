"""When `mirador serve` trains by itself: after N new ratings, at most every few hours,
never on battery. The decision is a pure function; its state is a small JSON file.

`adapters/schedule.json` keeps the last run (when, how many answers were rated
then, its outcome) and the last look (when, and why it did or did not train), so
`mirador adapters ls` can say what the schedule did and is waiting for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mirador.atomic import write_text_atomic
from mirador.energy.power import PowerState
from mirador.errors import TrainingError
from mirador.settings import TrainingConfig

STATE_FILE = "schedule.json"


@dataclass(frozen=True)
class ScheduleState:
    """The last scheduled run and the last look at whether one is due."""

    last_run_at: float | None = None
    rated_at_last_run: int = 0
    outcome: dict[str, Any] = field(default_factory=dict)  # exit code, message, seconds
    checked_at: float | None = None
    waiting: str = ""  # why the last look did not train ("" when it did)


@dataclass(frozen=True)
class Decision:
    """Whether to train now, and why (or why not)."""

    due: bool
    reason: str


def decide(config: TrainingConfig, state: ScheduleState, now: float, rated: int,
           power: PowerState) -> Decision:
    """Train now? `rated` is how many answers carry a rating now."""
    if not config.schedule:
        return Decision(False, "the schedule is off (training.schedule: false)")
    new = max(0, rated - state.rated_at_last_run)
    if new < config.after_ratings:
        return Decision(False, f"{new} new rating(s) of the {config.after_ratings} that "
                               "start a run")
    if state.last_run_at is not None:
        wait = state.last_run_at + config.every_hours * 3600 - now
        if wait > 0:
            return Decision(False, f"the last run was less than {config.every_hours:g} h ago "
                                   f"(next in {wait / 3600:.1f} h at the earliest)")
    if power.on_battery:
        return Decision(False, f"on battery ({power.describe()}); training waits for power")
    return Decision(True, f"{new} new rating(s) since the last run")


def state_path(home: Path) -> Path:
    return home / "adapters" / STATE_FILE


def read_state(home: Path) -> ScheduleState:
    """The schedule's state (the empty state before its first look)."""
    path = state_path(home)
    if not path.exists():
        return ScheduleState()
    try:
        return ScheduleState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"{path} is unreadable ({exc}); delete it and the schedule "
                            "starts afresh") from None


def write_state(home: Path, state: ScheduleState) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(asdict(state), indent=1) + "\n")


def describe(state: ScheduleState) -> list[str]:
    """Lines for `mirador adapters ls`: the last scheduled run and what it waits for."""
    lines = []
    if state.last_run_at is not None:
        outcome = state.outcome
        lines.append(f"last scheduled run: exit {outcome.get('exit_code')}, "
                     f"{outcome.get('seconds', 0):.0f}s: {outcome.get('message', '')}")
    if state.waiting:
        lines.append(f"schedule waiting: {state.waiting}")
    return lines
