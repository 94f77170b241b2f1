"""`run_python`: model-written code in a separate, locked-down process.

What holds the code in, from the outside in (the README's "Sandbox" table says
which attempt each layer stops):

- **bubblewrap** (`bwrap`): a fresh mount namespace holding only the system's
  libraries and the Python install, read-only, a private `/proc` and `/dev`, and
  an empty working directory as the only writable place; new network, PID, IPC
  and UTS namespaces (no network at all: not even loopback reaches the host).
- **another uid**: as root, `setpriv` drops to an unused uid with no groups and
  no capabilities (`no_new_privs`), so file permissions apply and
  `RLIMIT_NPROC` means something (the kernel does not count it for root).
- **rlimits** (`prlimit`): CPU seconds, address space, file size, open files,
  one process (so `fork`, `os.system` and `subprocess` fail), no core files.
- **a wall-clock timeout** that kills the whole process group, and output cut
  at `output_bytes` (the process is stopped once it writes more).
- **`python -I`** with an empty environment: no `PYTHON*` variables, no user
  site-packages, no current directory on `sys.path`.

Without bubblewrap the sandbox refuses to run unless `tools.sandbox.isolation` is
`namespaces`; then network, PID, IPC and UTS namespaces come from `unshare`, and the
uid, rlimits and timeout as above, but the filesystem is the host's, guarded by
permissions only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mirador.settings import SandboxConfig, Settings
from mirador.toolspec import Tool, ToolError, ToolResult

Isolation = Literal["bubblewrap", "namespaces"]
WORKDIR = "/sandbox"  # where the code runs, inside bubblewrap
_UID_RANGE = (200_000, 299_999)  # unused uids: one per run, so RLIMIT_NPROC counts only it
_MIB = 1024 * 1024
_REAP_SECONDS = 5.0


@dataclass(frozen=True)
class SandboxRun:
    """What one run of code did."""

    stdout: str
    stderr: str
    exit_code: int | None  # None when it was killed (timeout or too much output)
    timed_out: bool
    output_cut: bool
    isolation: Isolation
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.output_cut


@dataclass(frozen=True)
class _Helpers:
    """The programs the sandbox is built from, found on PATH."""

    bwrap: str | None
    unshare: str | None
    prlimit: str
    setpriv: str


def _find_helpers() -> _Helpers:
    prlimit, setpriv = shutil.which("prlimit"), shutil.which("setpriv")
    if prlimit is None or setpriv is None:
        raise ToolError("run_python needs 'prlimit' and 'setpriv' (util-linux); install them "
                        "with: apt install util-linux")
    return _Helpers(bwrap=shutil.which("bwrap"), unshare=shutil.which("unshare"),
                    prlimit=prlimit, setpriv=setpriv)


def choose_isolation(config: SandboxConfig, helpers: _Helpers | None = None) -> Isolation:
    """The isolation the settings ask for, refused when this machine cannot give it."""
    helpers = helpers or _find_helpers()
    if config.isolation == "bubblewrap" and helpers.bwrap is None:
        raise ToolError("run_python needs bubblewrap for filesystem isolation and it is not "
                        "installed: apt install bubblewrap (or set tools.sandbox.isolation: "
                        "namespaces in config.yaml to accept weaker isolation)")
    if config.isolation == "namespaces" and (helpers.unshare is None or os.geteuid() != 0):
        raise ToolError("tools.sandbox.isolation 'namespaces' needs 'unshare' and root to "
                        "make a network namespace; install bubblewrap (apt install "
                        "bubblewrap) and set tools.sandbox.isolation: bubblewrap")
    return config.isolation


def _python(config: SandboxConfig) -> tuple[str, Path]:
    """The real interpreter (not a venv's symlink) and the install it needs."""
    if config.python is None:
        return os.path.realpath(sys.executable), Path(sys.base_prefix).resolve()
    found = shutil.which(config.python)
    if found is None:
        raise ToolError(f"tools.sandbox.python '{config.python}' is not an interpreter on this "
                        "machine; give the path of a python3, or leave it out to use Mirador's")
    python = Path(os.path.realpath(found))
    return str(python), python.parent.parent  # .../bin/python3 -> its install


def _closed_to_others(install: Path) -> Path | None:
    """The first directory on the way to `install` another uid may not enter, if any."""
    for directory in [*reversed(install.parents), install]:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return directory
    return None


def _check_reachable(install: Path) -> None:
    """Under `namespaces` the code's uid sees the host's files: its Python must be open to it."""
    closed = _closed_to_others(install)
    if closed is not None:
        raise ToolError(f"the sandbox's uid cannot reach the Python install {install} ({closed} "
                        "is closed to other users), which tools.sandbox.isolation 'namespaces' "
                        "needs; use bubblewrap, or set tools.sandbox.python: /usr/bin/python3")


def _limits(config: SandboxConfig, helpers: _Helpers) -> list[str]:
    return [helpers.prlimit, f"--cpu={config.cpu_seconds}", f"--as={config.memory_mb * _MIB}",
            f"--fsize={config.file_size_mb * _MIB}", f"--nofile={config.open_files}",
            "--nproc=1", "--core=0", "--"]


def _drop_privileges(uid: int, helpers: _Helpers) -> list[str]:
    if os.geteuid() != 0:
        return []  # an ordinary user already has no privileges to drop
    return [helpers.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _root_mounts() -> list[str]:
    """The system directories, read-only (or as the symlinks they are on merged-/usr)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _install_mount(install: Path) -> list[str]:
    """The Python install, read-only at its own path, the directories above it enterable."""
    if install.is_relative_to("/usr"):
        return []
    above = [d for d in reversed(install.parents) if d != Path("/")]
    dirs = [arg for d in above for arg in ("--perms", "0755", "--dir", str(d))]
    return [*dirs, "--ro-bind", str(install), str(install)]


Bind = tuple[Path, str]
"""A host file or directory and the path it is mounted at, read-only, inside bubblewrap."""


def _binds(binds: Sequence[Bind]) -> list[str]:
    args: list[str] = []
    for source, target in binds:
        parents = [p for p in reversed(PurePosixPath(target).parents) if str(p) != "/"]
        args += [arg for p in parents for arg in ("--perms", "0755", "--dir", str(p))]
        args += ["--ro-bind", str(source), target]
    return args


def _bubblewrap(helpers: _Helpers, workdir: Path, install: Path,
                binds: Sequence[Bind] = ()) -> list[str]:
    assert helpers.bwrap is not None
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                  "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        namespaces.append("--unshare-user")  # an ordinary user needs it for the others
    return [helpers.bwrap, *_root_mounts(), *_install_mount(install), *_binds(binds),
            "--proc", "/proc",
            "--dev", "/dev",
            "--bind", str(workdir), WORKDIR, "--chdir", WORKDIR, *namespaces,
            "--hostname", "sandbox", "--die-with-parent", "--new-session", "--"]


def _namespaces(helpers: _Helpers) -> list[str]:
    assert helpers.unshare is not None
    return [helpers.unshare, "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child",
            "--mount-proc", "--"]


def sandbox_command(config: SandboxConfig, isolation: Isolation, workdir: Path,
                    uid: int, helpers: _Helpers | None = None,
                    binds: Sequence[Bind] = ()) -> list[str]:
    """The argv that runs `python -I -` (the code comes on stdin) inside the sandbox;
    `binds` are mounted read-only (bubblewrap only: under `namespaces` they are refused)."""
    helpers = helpers or _find_helpers()
    python, install = _python(config)
    if isolation == "namespaces":
        _check_reachable(install)
        if binds:
            raise ToolError("read-only mounts need bubblewrap (apt install bubblewrap); "
                            "tools.sandbox.isolation 'namespaces' cannot give them")
    outer = (_bubblewrap(helpers, workdir, install, binds) if isolation == "bubblewrap"
             else _namespaces(helpers))
    return [*outer, *_limits(config, helpers), *_drop_privileges(uid, helpers),
            python, "-I", "-"]


def _make_workdir(uid: int) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="mirador-sandbox-"))
    if os.geteuid() == 0:
        os.chown(workdir, uid, uid)
    return workdir


class _Capped:
    """Collects a stream's bytes up to a cap; says when the cap was passed."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.cut = False

    async def drain(self, stream: asyncio.StreamReader, over: asyncio.Event) -> None:
        # Reads to the end even past the cap: asyncio's `wait()` returns only once every
        # pipe is closed, and a pipe nobody reads is never seen to close.
        while chunk := await stream.read(65536):
            room = self.cap - len(self.data)
            self.data += chunk[:max(room, 0)]
            if len(chunk) > room:
                self.cut = True
                over.set()

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has already exited: nothing to kill
        os.killpg(process.pid, signal.SIGKILL)


async def _supervise(process: asyncio.subprocess.Process, code: str,
                     config: SandboxConfig) -> tuple[_Capped, _Capped, bool]:
    """Feed the code, collect output, and kill the group on timeout or too much output."""
    assert process.stdin is not None and process.stdout is not None
    assert process.stderr is not None
    out, err, over = _Capped(config.output_bytes), _Capped(config.output_bytes), asyncio.Event()
    process.stdin.write(code.encode())
    process.stdin.close()
    readers = asyncio.gather(out.drain(process.stdout, over), err.drain(process.stderr, over),
                             process.wait())
    stop = asyncio.ensure_future(over.wait())
    waiters: set[asyncio.Future[Any]] = {readers, stop}
    done, _ = await asyncio.wait(waiters, timeout=config.timeout,
                                 return_when=asyncio.FIRST_COMPLETED)
    timed_out = not done
    stop.cancel()
    if readers not in done:
        _kill_group(process)
        await _reap(readers)
    return out, err, timed_out


async def _reap(readers: asyncio.Future[Any]) -> None:
    """Wait for a killed sandbox's pipes to close; they must, as nothing in it survives."""
    finished, _ = await asyncio.wait({readers}, timeout=_REAP_SECONDS)
    if not finished:
        readers.cancel()
        raise ToolError(f"the sandbox did not stop within {_REAP_SECONDS:g} s of being "
                        "killed; this is a bug, please report it")
    readers.result()


async def run_code(code: str, config: SandboxConfig | None = None,
                   binds: Sequence[Bind] = ()) -> SandboxRun:
    """Run `code` with `python -I` in the sandbox and return what it did; `binds` are
    host paths mounted read-only inside it (bubblewrap only)."""
    config = config or SandboxConfig()
    helpers = _find_helpers()
    isolation = choose_isolation(config, helpers)
    uid = secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0]) + _UID_RANGE[0]
    workdir = _make_workdir(uid)
    started = time.perf_counter()
    try:
        argv = sandbox_command(config, isolation, workdir, uid, helpers, binds)
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={}, cwd=workdir, start_new_session=True)
        try:
            out, err, timed_out = await _supervise(process, code, config)
        finally:
            if process.returncode is None:  # cancelled from outside: nothing may outlive us
                _kill_group(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    killed = timed_out or out.cut or err.cut
    return SandboxRun(stdout=out.text(), stderr=err.text(),
                      exit_code=None if killed else process.returncode, timed_out=timed_out,
                      output_cut=out.cut or err.cut, isolation=isolation,
                      seconds=time.perf_counter() - started)


def describe(run: SandboxRun, config: SandboxConfig) -> str:
    """The run as text for the model: output first, then how it ended."""
    parts = [f"stdout:\n{run.stdout}" if run.stdout else "stdout: (empty)"]
    if run.stderr:
        parts.append(f"stderr:\n{run.stderr}")
    if run.timed_out:
        parts.append(f"stopped: it ran longer than {config.timeout:g} s")
    elif run.output_cut:
        parts.append(f"stopped: it wrote more than {config.output_bytes} bytes")
    else:
        parts.append(f"exit code: {run.exit_code}")
    return "\n".join(parts)


RUN_PYTHON_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "A Python 3 program; print "
                            "what you want to see. Standard library only, no network, no "
                            "files outside its working directory."}},
    "required": ["code"],
    "additionalProperties": False,
}


def run_python_tool(config: SandboxConfig | None = None) -> Tool:
    """The `run_python` tool: code in the sandbox, its output as the result."""
    config = config or SandboxConfig()

    async def call(args: dict[str, object]) -> ToolResult:
        code = args.get("code")
        if not isinstance(code, str):
            raise ToolError("run_python needs 'code', a string holding a Python program")
        run = await run_code(code, config)
        return ToolResult(text=describe(run, config), ok=run.ok, data=run)

    return Tool(name="run_python", description="Run a short Python program in an isolated "
                "sandbox (no network, no files, limited time and memory) and see its output.",
                parameters=RUN_PYTHON_SCHEMA, call=call, source="builtin",
                timeout=config.timeout + 5.0, tags=("sandbox",))


def sandbox_tools(settings: Settings | None = None) -> list[Tool]:
    """The sandbox's tools, for the registry, with `tools.sandbox` from the settings."""
    return [run_python_tool(settings.config.tools.sandbox if settings else None)]
