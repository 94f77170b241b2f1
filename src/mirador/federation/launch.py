"""Flower's processes, started the way its docs describe: a SuperLink, SuperNodes, `flwr run`.

Each is the console script Flower installs beside this Python. Addresses are loopback
unless TLS is configured: a peer never talks in the clear to another machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from mirador.errors import FederationError, MissingExtraError
from mirador.host import is_loopback

from .plan import RoundPlan

CONNECTION = "mirador"


@dataclass(frozen=True)
class Tls:
    """TLS files: the CA every side trusts; the SuperLink's certificate and key."""

    ca: Path
    certificate: Path | None = None
    key: Path | None = None


def flower_command(name: str) -> str:
    """The path of one of Flower's console scripts, beside this interpreter."""
    if importlib.util.find_spec("flwr") is None:
        raise MissingExtraError("flwr", "federation")
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FederationError(f"{path} is missing though flwr is installed; reinstall it "
                              "with: pip install --force-reinstall 'mirador[federation]'")
    return str(path)


def check_address(address: str, tls: Tls | None) -> None:
    """Refuse to speak in the clear to anything but this machine, or with TLS files that
    are not there."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if tls is None and not is_loopback(host):
        raise FederationError(f"{address} is not on this machine and no TLS is configured; "
                              "set federation.root_certificates (a PEM CA file) in "
                              "config.yaml or use a loopback address")
    for name, path in (("CA file", tls.ca if tls else None),
                       ("certificate", tls.certificate if tls else None),
                       ("key", tls.key if tls else None)):
        if path is not None and not path.is_file():
            raise FederationError(f"the TLS {name} {path} does not exist; check "
                                  "federation.root_certificates in config.yaml")


_FLOWER_EXIT = re.compile(r"Exit Code: (\d+)")
# Flower's exit codes (flwr.supercore.exit) a peer can do something about
_NODE_EXITS = {
    305: "the SuperLink's TLS certificate is not signed by the CA in "
         "federation.root_certificates (or is not for this address): ask the coordinator "
         "for the CA file that signed it",
}


def node_stopped(code: int, log: Path) -> FederationError:
    """Why a SuperNode that exited with `code` stopped, as an error saying what to do.
    The process exits 1; Flower writes its own code into the log ("Exit Code: 305")."""
    try:
        found = _FLOWER_EXIT.findall(log.read_text(errors="replace"))
    except OSError:
        found = []
    flower = int(found[-1]) if found else None
    why = _NODE_EXITS.get(flower or 0, "it stopped")
    said = f", Flower's code {flower}" if flower else ""
    return FederationError(f"the SuperNode exited (status {code}{said}): {why}; "
                           f"Flower's log: {log}")




def superlink(address: str, flwr_home: Path, tls: Tls | None = None,
              output: IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """Start a SuperLink (the coordinator's side) serving Flower's Fleet, Control and
    Runtime APIs on `address` (host:port); its ServerApp runs in a subprocess."""
    check_address(address, tls)
    host, port = address.rsplit(":", 1)
    security = ["--insecure"] if tls is None else [
        "--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.certificate),
        "--ssl-keyfile", str(tls.key)]
    command = [flower_command("flower-superlink"), *security, "--host", host.strip("[]"),
               "--port", port, "--disable-runtime-dependency-installation"]
    return _start(command, flwr_home, output)


def supernode(link: str, runtime_port: int, node_config: Mapping[str, str], flwr_home: Path,
              root_certificates: Path | None = None,
              output: IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """Start a SuperNode (a peer's side) connected to the SuperLink's Fleet API at `link`."""
    check_address(link, Tls(root_certificates) if root_certificates else None)
    security = (["--root-certificates", str(root_certificates)] if root_certificates
                else ["--insecure"])
    config = " ".join(f"{key}={_quoted(value)}" for key, value in node_config.items())
    command = [flower_command("flower-supernode"), *security, "--superlink", link,
               "--host", "127.0.0.1", "--port", str(runtime_port), "--node-config", config]
    return _start(command, flwr_home, output)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _start(command: list[str], flwr_home: Path,
           output: IO[Any] | None) -> subprocess.Popen[bytes]:
    sink: Any = output if output is not None else subprocess.DEVNULL
    flwr_home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                            start_new_session=True, env=_environment(flwr_home))


def _environment(flwr_home: Path) -> dict[str, str]:
    """Flower's state (installed apps, its CLI config) kept under `flwr_home`, not ~/.flwr."""
    env = {**os.environ, "FLWR_HOME": str(flwr_home)}
    # Flower starts its helpers (flower-superexec, flwr-serverapp...) by name, from PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # nothing leaves: no usage pings
    return env


def app_directory() -> Path:
    """The Flower App (its pyproject.toml) that `flwr run` builds and submits."""
    return Path(str(resources.files("mirador.federation").joinpath("flower_app")))


def write_connection(flwr_home: Path, link: str, root_certificates: Path | None) -> Path:
    """Flower's CLI config naming the SuperLink at `link` as connection 'mirador'."""
    check_address(link, Tls(root_certificates) if root_certificates else None)
    flwr_home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]",
             f'address = "{link}"']
    lines.append(f'root-certificates = "{root_certificates}"' if root_certificates
                 else "insecure = true")
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def submit(plan: RoundPlan, flwr_home: Path, output: IO[Any] | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """`flwr run` the app with `plan` and stream its log until the run ends."""
    command = [flower_command("flwr"), "run", str(app_directory()), CONNECTION,
               "--run-config", plan.toml_overrides(), "--stream"]
    env = _environment(flwr_home)
    sink: Any = output if output is not None else subprocess.PIPE
    return subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                          timeout=timeout, check=False)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(address: str, seconds: float) -> None:
    """Wait until something accepts connections at host:port, or fail saying so."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((host.strip("[]"), int(port))) == 0:
                return
        time.sleep(0.25)
    raise FederationError(f"nothing answers at {address} after {seconds:.0f}s; is the "
                          "SuperLink running there?")
