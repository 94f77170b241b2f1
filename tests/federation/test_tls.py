"""TLS between a SuperNode and a SuperLink, on real Flower with a CA made in the test: the
right CA connects, a wrong one is refused with a message saying what to do."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("flwr") is None:
    pytest.skip("flwr is not installed: scripts/test.sh runs tests/federation in "
                ".venv-federation", allow_module_level=True)

from mirador.errors import FederationError
from mirador.federation import launch
from tests.federation.certs import issue, make_ca
from tests.federation.harness import wait_until
from tests.support.net import free_port


@pytest.fixture
def link(tmp_path: Path) -> Iterator[tuple[str, launch.Tls]]:
    issued = issue(tmp_path / "certs")
    tls = launch.Tls(issued.ca, issued.certificate, issued.key)
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "superlink.log").open("ab") as output:
        process = launch.superlink(address, tmp_path / "link", tls, output=output)
        try:
            launch.wait_listening(address, 120)
            yield address, tls
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _node(tmp_path: Path, name: str, address: str, ca: Path) -> tuple[subprocess.Popen[bytes],
                                                                      Path]:
    log = tmp_path / f"{name}.log"
    with log.open("ab") as output:  # the SuperNode has its own copy of the descriptor
        node = launch.supernode(address, free_port(), {"home": str(tmp_path)}, tmp_path / name,
                                ca, output=output)
    return node, log


@pytest.mark.timeout(600)
def test_the_right_ca_joins_and_a_wrong_one_is_refused_clearly(
        tmp_path: Path, link: tuple[str, launch.Tls]) -> None:
    address, tls = link
    wrong, _, _ = make_ca(tmp_path / "other", "wrong-ca")
    good, good_log = _node(tmp_path, "good", address, tls.ca)
    bad, bad_log = _node(tmp_path, "bad", address, wrong)
    try:
        assert wait_until(lambda: "SuperNode ID:" in good_log.read_text(), 300), \
            good_log.read_text()[-2000:]
        assert good.poll() is None
        code = bad.wait(timeout=300)
        assert code != 0 and "CERTIFICATE_VERIFY_FAILED" in bad_log.read_text()
        message = str(launch.node_stopped(code, bad_log))
        assert "Flower's code 305" in message, message
        assert "not signed by the CA in federation.root_certificates" in message
    finally:
        _stop(good)
        _stop(bad)


def test_a_missing_key_is_named_before_anything_starts(tmp_path: Path) -> None:
    ca, certificate = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca.write_text("")
    certificate.write_text("")
    with pytest.raises(FederationError, match="the TLS key .*server.key does not exist"):
        launch.superlink("10.1.2.3:9092", tmp_path, launch.Tls(ca, certificate,
                                                               tmp_path / "server.key"))
