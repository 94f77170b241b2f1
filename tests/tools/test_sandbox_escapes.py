"""Escape attempts against `run_python`: each one is a test that must fail to escape.

Every attempt runs for real in the sandbox (bubblewrap, and the weaker `namespaces`
isolation where it applies); the assertion is about the host afterwards (a file
not written, a listener never reached) or what the code could see, not only about
an error message. The README's "Sandbox" table lists these and what stopped each.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from mirador.settings import SandboxConfig
from mirador.tools.sandbox import SandboxRun, run_code

SHADOW_EXISTS = Path("/etc/shadow").exists()
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (apt install bubblewrap)")
# Under `namespaces` the code's uid must reach its interpreter on the host's filesystem;
# Debian's /usr/bin/python3 is open to everyone (Mirador's own may sit under /root).
SYSTEM_PYTHON = "/usr/bin/python3"
needs_system_python = pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(),
                                         reason=f"{SYSTEM_PYTHON} is not installed")
BOTH = pytest.mark.parametrize("isolation", [
    pytest.param("bubblewrap", marks=needs_bwrap),
    pytest.param("namespaces", marks=needs_system_python)])
FAST = {"timeout": 8.0, "cpu_seconds": 4}


async def attempt(code: str, isolation: str = "bubblewrap", **limits: object) -> SandboxRun:
    python = {"python": SYSTEM_PYTHON} if isolation == "namespaces" else {}
    config = SandboxConfig.model_validate({**FAST, **python, **limits, "isolation": isolation})
    return await run_code(textwrap.dedent(code), config)


@BOTH
async def test_cannot_read_etc_shadow(isolation: str) -> None:
    assert SHADOW_EXISTS
    run = await attempt("print(open('/etc/shadow').read())", isolation)
    assert run.exit_code == 1
    assert ("FileNotFoundError" if isolation == "bubblewrap" else "PermissionError") in run.stderr
    assert "root:" not in run.stdout


@BOTH
async def test_cannot_read_the_mirador_home(isolation: str, isolated_home: Path) -> None:
    secret = isolated_home / "memory-secret.txt"
    secret.write_text("the-private-memory")
    run = await attempt(f"print(open({str(secret)!r}).read())", isolation)
    assert run.exit_code == 1
    assert "the-private-memory" not in run.stdout + run.stderr


@BOTH
async def test_cannot_see_an_environment_secret(isolation: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRADOR_TEST_SECRET", "sk-do-not-leak")
    run = await attempt("""
        import os, glob
        print(dict(os.environ))
        for path in glob.glob('/proc/*/environ'):
            try:
                print(open(path, 'rb').read())
            except OSError as e:
                print(path, type(e).__name__)
    """, isolation)
    assert run.exit_code == 0, run.stderr
    assert "sk-do-not-leak" not in run.stdout
    assert "MIRADOR" not in run.stdout


@BOTH
async def test_cannot_write_outside_its_directory(isolation: str, tmp_path: Path) -> None:
    targets = [tmp_path / "escaped.txt", Path("/usr/escaped-by-sandbox.txt"),
               Path("/etc/escaped-by-sandbox.txt")]
    run = await attempt(f"""
        for path in {[str(t) for t in targets]!r}:
            try:
                open(path, 'w').write('out')
                print('wrote', path)
            except OSError as e:
                print('refused', path, type(e).__name__)
        open('inside.txt', 'w').write('fine')
        print('inside ok')
    """, isolation)
    assert run.exit_code == 0, run.stderr
    assert "wrote" not in run.stdout and "inside ok" in run.stdout
    assert not any(target.exists() for target in targets)


@BOTH
async def test_cannot_reach_a_loopback_listener(isolation: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.settimeout(0.5)
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(TimeoutError):  # nobody came: what the test wants
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    run = await attempt(f"""
        import socket
        s = socket.socket()
        s.settimeout(2)
        s.connect(('127.0.0.1', {port}))
        print('connected')
    """, isolation)
    thread.join()
    listener.close()
    assert accepted == []
    assert "connected" not in run.stdout and run.exit_code == 1


@BOTH
async def test_a_fork_bomb_cannot_fork(isolation: str) -> None:
    run = await attempt("""
        import os
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    os._exit(0)
                children += 1
        except OSError as e:
            print('forks', children, type(e).__name__)
    """, isolation)
    assert run.stdout.strip() == "forks 0 BlockingIOError"
    assert not run.timed_out


@needs_bwrap
async def test_a_memory_bomb_hits_the_address_space_limit() -> None:
    run = await attempt("blocks = []\nwhile True: blocks.append(bytearray(50 * 2**20))",
                        memory_mb=256)
    assert run.exit_code == 1 and "MemoryError" in run.stderr
    assert not run.timed_out


@needs_bwrap
async def test_an_infinite_loop_is_killed() -> None:
    run = await attempt("while True: pass", timeout=2.0, cpu_seconds=60)
    assert run.timed_out and run.exit_code is None
    assert run.seconds < 6


@needs_bwrap
async def test_a_busy_loop_hits_the_cpu_limit() -> None:
    run = await attempt("while True: pass", timeout=30.0, cpu_seconds=1)
    assert not run.timed_out
    assert run.exit_code is not None and run.exit_code != 0  # SIGXCPU, then SIGKILL


@needs_bwrap
async def test_ctypes_gains_nothing() -> None:
    run = await attempt("""
        import ctypes, os
        libc = ctypes.CDLL(None)
        print('setuid', libc.setuid(0), 'uid', os.getuid())
        print('system', libc.system(b'echo escaped > /sandbox/marker'))
        print('marker', os.path.exists('/sandbox/marker'))
        print('shadow', libc.open(b'/etc/shadow', 0))
    """)
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert lines["setuid"].startswith("-1") and not lines["setuid"].endswith("uid 0")
    assert lines["marker"] == "False"
    assert lines["shadow"] == "-1"


@BOTH
async def test_os_system_and_subprocess_cannot_start_a_program(isolation: str) -> None:
    run = await attempt("""
        import os, subprocess
        os.system('echo ran > marker-system')
        try:
            subprocess.run(['/bin/sh', '-c', 'echo ran > marker-subprocess'])
        except OSError as e:
            print('subprocess', type(e).__name__)
        print('markers', sorted(p for p in os.listdir('.') if p.startswith('marker')))
    """, isolation)
    assert "subprocess BlockingIOError" in run.stdout
    assert "markers []" in run.stdout


@needs_bwrap
async def test_huge_output_is_cut_and_the_process_stopped() -> None:
    run = await attempt("while True: print('x' * 10000)", output_bytes=5000)
    assert run.output_cut and run.exit_code is None
    assert len(run.stdout) == 5000 and not run.timed_out


@needs_bwrap
async def test_subclasses_and_globals_walks_reach_nothing_more(isolated_home: Path) -> None:
    secret = isolated_home / "walk-secret.txt"
    secret.write_text("reached-by-a-walk")
    run = await attempt(f"""
        wrap_close = [c for c in ().__class__.__base__.__subclasses__()
                      if c.__name__ == '_wrap_close'][0]
        os_globals = wrap_close.__init__.__globals__
        builtins = os_globals['__builtins__']
        os = builtins['__import__']('os')
        print('system', os_globals['system']('echo hi > marker'), os.path.exists('marker'))
        for path in ['/etc/shadow', {str(secret)!r}]:
            try:
                print(builtins['open'](path).read())
            except OSError as e:
                print('refused', type(e).__name__)
        print('uid', os.getuid())
    """)
    assert run.exit_code == 0, run.stderr
    assert run.stdout.count("refused FileNotFoundError") == 2
    assert "False" in next(line for line in run.stdout.splitlines() if line.startswith("system"))
    assert "reached-by-a-walk" not in run.stdout and "uid 0" not in run.stdout
