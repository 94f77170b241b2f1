"""What agents keep under the Mirador home, in `agents/`:

- `enabled.json`: the agents the person enabled, with when (written by `mirador agents`);
- `last_runs.json`: when each agent last ran (written by the runner);
- `notifications.jsonl`: one line per result, newest last;
- `runs.jsonl`: one line per run, with what it did (answered, skipped, failed).

Two files for state, each with one writer, so the CLI and a running server never
overwrite each other's changes; JSON lines are appended whole.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mirador.errors import ConfigError

Did = Literal["answered", "skipped", "failed"]


@dataclass(frozen=True)
class Notification:
    """An agent's result, for the person to read."""

    id: str
    agent: str
    at: float
    text: str
    status: str  # the answer's: ok, partial or error
    answer_id: str | None = None
    condition: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run, logged whatever happened."""

    agent: str
    at: float
    did: Did
    trigger: str
    seconds: float = 0.0
    answer_id: str | None = None
    condition: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class AgentStore:
    """The agents' files under `home/agents`."""

    def __init__(self, home: Path) -> None:
        self.folder = home / "agents"
        self._lock = threading.Lock()

    # -- enabled, last runs ---------------------------------------------------------------

    def enabled(self) -> dict[str, float]:
        """Enabled agents' names, with when each was enabled."""
        return {k: float(v) for k, v in self._read("enabled.json").items()}

    def enable(self, name: str, at: float) -> None:
        self._write("enabled.json", {**self._read("enabled.json"), name: at})

    def disable(self, name: str) -> bool:
        """False when it was not enabled."""
        current = self._read("enabled.json")
        if current.pop(name, None) is None:
            return False
        self._write("enabled.json", current)
        return True

    def last_runs(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._read("last_runs.json").items()}

    def ran(self, name: str, at: float) -> None:
        self._write("last_runs.json", {**self._read("last_runs.json"), name: at})

    # -- logs -----------------------------------------------------------------------------

    def notify(self, note: Notification) -> None:
        self._append("notifications.jsonl", asdict(note))

    def log(self, record: RunRecord) -> None:
        self._append("runs.jsonl", asdict(record))

    def notifications(self, limit: int = 50, agent: str | None = None) -> list[Notification]:
        """The newest first."""
        rows = [Notification(**row) for row in self._lines("notifications.jsonl")
                if agent is None or row.get("agent") == agent]
        return rows[::-1][:limit]

    def runs(self, limit: int = 50, agent: str | None = None) -> list[RunRecord]:
        """The newest first."""
        rows = [RunRecord(**row) for row in self._lines("runs.jsonl")
                if agent is None or row.get("agent") == agent]
        return rows[::-1][:limit]

    # -- files ----------------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any]:
        path = self.folder / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read it ({exc}); fix or delete it") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object; fix or delete it")
        return data

    def _write(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f".{name}.{os.getpid()}.tmp"
            temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            temporary.replace(self.folder / name)

    def _append(self, name: str, row: dict[str, Any]) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / name).open("a", encoding="utf-8") as out:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")

    def _lines(self, name: str) -> Iterator[dict[str, Any]]:
        path = self.folder / name
        if not path.exists():
            return
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield _row(path, line)


def _row(path: Path, line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        raise ConfigError(f"{path}: a line is not JSON ({line[:60]!r}); fix or delete "
                          "that line") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{path}: a line is not a JSON object; fix or delete that line")
    return row
