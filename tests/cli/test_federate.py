"""`mirador federate`: opt-in, loopback unless TLS, and a dry run that sends nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
