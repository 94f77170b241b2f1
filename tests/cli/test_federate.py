"""`mirador federate`: opt-in, loopback unless TLS, and a dry run that sends nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mirador.learning.adapters import AdapterStore
from tests.conftest import link_default_model
from tests.support.net import free_port, listening, wait_for
from tests.training.conftest import STYLED, write_history


def mirador(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", "federate", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_federating_is_opt_in_and_says_what_would_leave(isolated_home: Path) -> None:
    result = mirador()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "federation is opt-in: nothing was sent" in result.stderr
    assert "--yes" in result.stderr
    assert "Never sent: your questions, answers, ratings, memories" in result.stdout
    assert not (isolated_home / "federation").exists()


def test_another_machine_without_tls_is_refused(isolated_home: Path) -> None:
    result = mirador("--yes", "--superlink", "10.20.30.40:9092")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "10.20.30.40:9092 is not on this machine and no TLS is configured" in result.stderr


def test_a_missing_ca_file_is_named(isolated_home: Path) -> None:
    missing = isolated_home / "no-such-ca.pem"
    (isolated_home / "config.yaml").write_text(
        f"federation:\n  root_certificates: {missing}\n")
    result = mirador("--yes", "--superlink", "10.20.30.40:9092")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"the TLS CA file {missing} does not exist" in result.stderr


def test_the_coordinators_choices_are_refused_when_joining(isolated_home: Path) -> None:
    result = mirador("--yes", "--noise", "0.5", "--rounds", "2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--rounds, --noise: a peer that joins follows the coordinator's plan" in result.stderr


@pytest.mark.timeout(900)
def test_a_dry_run_shows_size_noise_and_epsilon_without_connecting(
        isolated_home: Path) -> None:
    write_history(isolated_home, STYLED)
    result = mirador("--dry-run", "--rounds", "4", "--noise", "1.0", "--clip", "0.5",
                     "--peers", "3", timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "nothing is sent" in result.stderr and "(none: dry run)" in out
    assert "examples trained on      6" in out
    assert "921,600 numbers, 3.69 MB" in out  # SmolLM2: 30 layers x q,k,v,o, rank 8
    assert "clipped to 0.5000" in out
    assert "std 0.167 per number" in out  # 1.0 x 0.5 / 3 peers
    assert "epsilon 5.3 per round, 11.6 after 4 rounds" in out
    assert not (isolated_home / "federation" / "rounds.jsonl").exists()  # no round was run


def _federate(home: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    with log.open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", "mirador", "federate", "--yes", *args],
                                stdout=output, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


@pytest.mark.timeout(1800)
def test_coordinate_and_join_from_the_command_line_run_a_round_and_deploy(
        isolated_home: Path, tmp_path: Path, smollm_gguf: Path) -> None:
    pytest.importorskip("flwr", reason="runs in .venv-federation (scripts/test.sh)")
    coordinator = isolated_home
    (coordinator / "config.yaml").write_text("federation:\n  local_steps: 6\n")
    write_history(coordinator, STYLED[0::2], prefix="c-")
    peer = link_default_model(tmp_path / "peer-home", smollm_gguf)
    write_history(peer, STYLED[1::2], prefix="p-")
    link = f"127.0.0.1:{free_port()}"
    leader = _federate(coordinator, "--coordinate", "--superlink", link, "--rounds", "1",
                       "--peers", "2", "--noise", "0.001", "--clip", "2.0",
                       log=tmp_path / "coordinator.log")
    joined = None
    try:
        assert wait_for(lambda: listening(int(link.rsplit(":", 1)[1])), 120, 0.5)
        joined = _federate(peer, "--superlink", link, log=tmp_path / "peer.log")
        assert leader.wait(timeout=1700) == 0, (tmp_path / "coordinator.log").read_text()[-3000:]
    finally:
        for process in (leader, joined):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)
    logs = list((coordinator / "federation" / "coordinator").glob("*/rounds.jsonl"))
    assert len(logs) == 1, (tmp_path / "coordinator.log").read_text()[-3000:]
    entry = json.loads(logs[0].read_text().splitlines()[0])
    assert entry["peers"] == 2 and entry["aggregated"] and entry["evaluated_by"] == 2
    store = AdapterStore(peer, "quick")
    [version] = store.versions()
    assert version.meta["source"] == "federation" and version.meta["round"] == 1
    deployed = store.deployed()
    assert deployed is not None and deployed.version == version.version, version.meta


def test_a_terminated_peer_stops_its_supernode(isolated_home: Path, tmp_path: Path) -> None:
    """SIGTERM to `mirador federate` (a service manager stopping it) stops the SuperNode
    it started, which runs in its own session and would otherwise outlive it."""
    pytest.importorskip("flwr", reason="runs in .venv-federation (scripts/test.sh)")
    import psutil

    link = f"127.0.0.1:{free_port()}"  # nothing listens: the SuperNode keeps retrying
    peer = _federate(isolated_home, "--superlink", link, log=tmp_path / "peer.log")
    try:
        me = psutil.Process(peer.pid)
        assert wait_for(lambda: any("flower-supernode" in " ".join(c.cmdline())
                                    for c in me.children()), 120, 0.5), \
            (tmp_path / "peer.log").read_text()[-2000:]
        node = next(c for c in me.children() if "flower-supernode" in " ".join(c.cmdline()))
        peer.send_signal(signal.SIGTERM)
        assert peer.wait(timeout=60) == 128 + signal.SIGTERM
        assert wait_for(lambda: not node.is_running() or node.status() == psutil.STATUS_ZOMBIE,
                        30, 0.5)
    finally:
        if peer.poll() is None:
            os.killpg(peer.pid, signal.SIGKILL)
            peer.wait(timeout=30)
