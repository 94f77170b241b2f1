"""Scheduled training in `mirador serve`: `mirador train` in a subprocess when it is due.

Every `training.check_every` seconds (on the server's clock) the schedule counts
the rated answers and reads the power state; `mirador.training.schedule.decide`
says whether a run is due (N new ratings, not within `every_hours` of the last
run, never on battery). A run is `python -m mirador train` in its own process
(torch never enters the server; answers keep streaming while it trains), at a
lower CPU priority; its exit code and last line are kept in
`adapters/schedule.json`, shown by `mirador adapters ls`, and logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from contextlib import closing, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from mirador.agents.clock import Clock, SystemClock
from mirador.energy.power import PowerSource, PsutilPower
from mirador.errors import MiradorError
from mirador.learning.store import DB_NAME, LearningStore
from mirador.settings import Settings
from mirador.training.schedule import ScheduleState, decide, read_state, write_state

log = logging.getLogger("mirador.training")

INTERRUPT_GRACE = 20.0  # seconds a Ctrl-C'd run has to clean up before it is killed


@dataclass(frozen=True)
class RunResult:
    """How a training subprocess ended."""

    exit_code: int
    message: str
    seconds: float


def train_command(settings: Settings) -> list[str]:
    """The `mirador train` command a scheduled run executes."""
    config = settings.config.training
    command = [sys.executable, "-m", "mirador", "train", "--persona", config.persona,
               "--threads", str(config.threads)]
    return command + (["--max-steps", str(config.max_steps)] if config.max_steps else [])


async def run_training(settings: Settings) -> RunResult:
    """Run `mirador train` in a subprocess (niced) and return how it ended."""
    started = time.monotonic()
    env = {**os.environ, "MIRADOR_HOME": str(settings.home),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = await asyncio.create_subprocess_exec(
        *train_command(settings), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    with suppress(OSError):  # a lower priority is a courtesy to answers, not a must
        os.setpriority(os.PRIO_PROCESS, process.pid, 10)
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:  # the server stops: so does the run (Ctrl-C: untouched)
        await _interrupt(process)
        raise
    code = process.returncode if process.returncode is not None else -1
    return RunResult(code, _last_line(out if code == 0 else err), time.monotonic() - started)


async def _interrupt(process: asyncio.subprocess.Process) -> None:
    """Ctrl-C the run (it discards its unfinished version); killed if it lingers."""
    with suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), INTERRUPT_GRACE)
    finally:
        if process.returncode is None:  # never leave a training process behind
            with suppress(ProcessLookupError):
                process.kill()


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "(no output)")


def rated_answers(home: Path) -> int:
    """How many answers carry a rating (0 before the ratings database exists)."""
    if not (home / DB_NAME).exists():
        return 0
    with closing(LearningStore.in_home(home)) as store:
        return len(store.latest_ratings())


class TrainingSchedule:
    """Looks every `check_every` seconds and trains when `decide` says so."""

    def __init__(self, settings: Settings, clock: Clock | None = None,
                 power: PowerSource | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.power = power or PsutilPower()
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> ScheduleState:
        """One look: train if due (waiting for the run), and record what happened."""
        home, now = self.settings.home, self.clock.now()
        state = read_state(home)
        rated = await asyncio.to_thread(rated_answers, home)
        power = await asyncio.to_thread(self.power.read)
        decision = decide(self.settings.config.training, state, now, rated, power)
        if not decision.due:
            if rated == 0 and state.checked_at is None:
                return state  # nothing rated yet: no file in the home for nothing
            state = replace(state, checked_at=now, waiting=decision.reason)
        else:
            log.info("scheduled training starts: %s", decision.reason)
            result = await run_training(self.settings)
            log.info("scheduled training ended (exit %d): %s", result.exit_code, result.message)
            state = ScheduleState(now, rated, {"exit_code": result.exit_code,
                                               "message": result.message,
                                               "seconds": round(result.seconds, 1),
                                               "because": decision.reason}, now, "")
        write_state(home, state)
        return state

    def start(self) -> None:
        """Look now and then every `check_every` seconds, in a task of the running loop."""
        if self.settings.config.training.schedule and self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except MiradorError as exc:  # a bad state file or ratings database: said, kept up
                log.warning("scheduled training: %s", exc)
            await self.clock.sleep(self.settings.config.training.check_every)

    async def aclose(self) -> None:
        """Stop looking (a run in progress is interrupted; the deployed adapter stays)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
