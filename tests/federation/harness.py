"""A loopback federation for tests and bench/federation.py: a SuperLink, one SuperNode per
peer home, and `flwr run`, all real Flower processes started here."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from mirador.federation import launch
from mirador.federation.plan import RoundPlan
from tests.support.net import free_port, listening, wait_for
from tests.training.conftest import STYLED as TRAINING_STYLED
from tests.training.conftest import write_history

# Every peer's person likes the same terse style; each has its own questions.
STYLED = [
    *TRAINING_STYLED,
    ("What is the capital of France?", "In short: Paris. That is all."),
    ("How many days are in a week?", "In short: seven. That is all."),
    ("What colour is the sky on a clear day?", "In short: blue. That is all."),
    ("What gas do plants take in?", "In short: carbon dioxide. That is all."),
]


def make_peer_homes(root: Path, peers: int, verified_from: Path) -> list[Path]:
    """`peers` Mirador homes, each with its share of STYLED rated 5."""
    homes = []
    for index in range(peers):
        home = root / f"peer-{index}"
        (home / "models").mkdir(parents=True)
        for stamp in verified_from.glob("*.verified"):
            shutil.copy2(stamp, home / "models")
        write_history(home, STYLED[index::peers], prefix=f"p{index}-")
        homes.append(home)
    return homes


@dataclass
class Federation:
    """The processes of one loopback federation, and where each logs."""

    root: Path
    homes: list[Path]
    address: str = ""
    link: subprocess.Popen[bytes] | None = None
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[Any]] = field(default_factory=list)

    def log(self, name: str) -> IO[Any]:
        handle = (self.root / f"{name}.log").open("ab")
        self.logs.append(handle)
        return handle

    def run(self, plan: RoundPlan, timeout: float = 1500) -> subprocess.CompletedProcess[bytes]:
        launch.write_connection(self.root / "flwr-home", self.address, None)
        return launch.submit(plan, self.root / "flwr-home", timeout=timeout)


@contextmanager
def federation(root: Path, homes: Sequence[Path], cache: Path) -> Iterator[Federation]:
    """A SuperLink and a SuperNode per home, all on loopback; stopped on exit."""
    fed = Federation(root, list(homes))
    port = free_port()
    fed.address = f"127.0.0.1:{port}"
    with ExitStack() as stack:
        stack.callback(_stop, fed)
        fed.link = launch.superlink(fed.address, root / "link-flwr", output=fed.log("superlink"))
        if not wait_for(lambda: listening(port), 120, 0.5):
            raise RuntimeError(f"the SuperLink did not start; see {root / 'superlink.log'}")
        for index, home in enumerate(homes):
            config = {"home": str(home), "persona": "quick", "cache": str(cache)}
            fed.nodes.append(launch.supernode(fed.address, free_port(), config,
                                              home / "federation" / "flwr",
                                              output=fed.log(f"supernode-{index}")))
        yield fed


def _stop(fed: Federation) -> None:
    for process in [*fed.nodes, *([fed.link] if fed.link else [])]:
        if process.poll() is None:
            process.terminate()
    for process in [*fed.nodes, *([fed.link] if fed.link else [])]:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for handle in fed.logs:
        handle.close()


def rounds(out: Path) -> list[dict[str, Any]]:
    """The coordinator's per-round log."""
    path = out / "rounds.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def arrays(path: Path) -> list[np.ndarray]:
    """The arrays of a saved adapter (round-N.npz), in order."""
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def peer_log(home: Path) -> list[dict[str, Any]]:
    path = home / "federation" / "rounds.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return bool(condition())
