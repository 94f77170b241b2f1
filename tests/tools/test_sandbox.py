"""`run_python` as a tool: its result for the model, its settings, and its refusals."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import shutil
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mirador.settings import SandboxConfig, load_settings
from mirador.tools.sandbox import (
    _UID_RANGE,
    SandboxRun,
    _closed_to_others,
    _find_helpers,
    choose_isolation,
    run_code,
    run_python_tool,
    sandbox_tools,
)
from mirador.toolspec import ToolError

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (apt install bubblewrap)")


async def test_run_python_returns_the_output_as_text() -> None:
    tool = run_python_tool(SandboxConfig(timeout=8))
    result = await tool.call({"code": "print(sum(range(10)))"})
    assert result.ok
    assert result.text == "stdout:\n45\n\nexit code: 0"
    assert isinstance(result.data, SandboxRun) and result.data.isolation == "bubblewrap"


async def test_an_error_is_a_result_the_model_can_read() -> None:
    result = await run_python_tool().call({"code": "1/0"})
    assert not result.ok
    assert "ZeroDivisionError" in result.text and "exit code: 1" in result.text


async def test_a_timeout_says_so() -> None:
    result = await run_python_tool(SandboxConfig(timeout=1)).call({"code": "while 1: pass"})
    assert not result.ok and "stopped: it ran longer than 1 s" in result.text


async def test_code_must_be_a_string() -> None:
    with pytest.raises(ToolError, match="needs 'code'"):
        await run_python_tool().call({"code": 42})


def test_without_bubblewrap_the_sandbox_refuses_and_says_what_to_do() -> None:
    helpers = _find_helpers()
    missing = type(helpers)(bwrap=None, unshare=helpers.unshare, prlimit=helpers.prlimit,
                            setpriv=helpers.setpriv)
    with pytest.raises(ToolError, match="apt install bubblewrap"):
        choose_isolation(SandboxConfig(), missing)
    assert choose_isolation(SandboxConfig(isolation="namespaces"), missing) == "namespaces"


async def test_bubblewrap_runs_miradors_own_interpreter() -> None:
    run = await run_code("import sys; print(sys.version.split()[0], sys.prefix)")
    assert run.stdout.split() == [platform.python_version(), str(Path(sys.base_prefix))]


async def test_an_unknown_interpreter_is_refused() -> None:
    with pytest.raises(ToolError, match="'no-such-python' is not an interpreter"):
        await run_code("print(1)", SandboxConfig(python="no-such-python"))


@pytest.mark.skipif(_closed_to_others(Path(sys.base_prefix).resolve()) is None,
                    reason="Mirador's Python install is open to other users here")
async def test_namespaces_refuse_an_interpreter_the_sandbox_cannot_reach() -> None:
    with pytest.raises(ToolError, match="closed to other users.*tools.sandbox.python"):
        await run_code("print(1)", SandboxConfig(isolation="namespaces"))


def test_sandbox_settings_come_from_config_yaml(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        "tools:\n  sandbox:\n    timeout: 3\n    memory_mb: 256\n")
    config = load_settings().config.tools.sandbox
    assert (config.timeout, config.memory_mb, config.isolation) == (3.0, 256, "bubblewrap")
    with pytest.raises(ValidationError, match="memory_gb"):
        SandboxConfig.model_validate({"memory_gb": 1})


def test_sandbox_tools_lists_run_python_with_the_settings_limits(isolated_home: Path) -> None:
    assert [tool.name for tool in sandbox_tools()] == ["run_python"]
    (isolated_home / "config.yaml").write_text("tools:\n  sandbox:\n    timeout: 2\n")
    [tool] = sandbox_tools(load_settings())
    assert tool.parameters["required"] == ["code"] and tool.timeout == 7.0


def _sandboxed_processes() -> list[int]:
    """Processes running under one of the sandbox's throwaway uids."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            uid_line = next(line for line in status.read_text().splitlines()
                            if line.startswith("Uid:"))
            if _UID_RANGE[0] <= int(uid_line.split()[1]) <= _UID_RANGE[1]:
                found.append(int(status.parent.name))
    return found


async def test_cancelling_a_run_kills_the_sandbox() -> None:
    task = asyncio.ensure_future(run_code("while True: pass", SandboxConfig(timeout=60,
                                                                           cpu_seconds=60)))
    await asyncio.sleep(1.0)
    assert _sandboxed_processes(), "the sandboxed loop should be running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert _sandboxed_processes() == []
