"""`mirador agents`, run as a real process: list, enable, run now, log, disable."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli.test_cli import mirador

CONFIG = {"stages": [{"name": "quick_response", "persona": "quick", "confidence": 0.6,
                      "max_tokens": 8}],
          "agents": [{"name": "colours", "trigger": "every 30m", "prompt": "Name a colour."}]}


def test_list_enable_run_log_disable(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    listed = mirador("agents")
    assert listed.returncode == 0, listed.stderr
    assert "disabled  colours" in listed.stdout and "every 30m" in listed.stdout
    assert "last run: never" in listed.stdout

    enabled = mirador("agents", "enable", "colours")
    assert enabled.returncode == 0 and "Enabled colours (every 30m)" in enabled.stdout
    assert "enabled   colours" in mirador("agents").stdout

    ran = mirador("agents", "run", "colours")
    assert ran.returncode == 0, ran.stderr
    assert "colours (ok)" in ran.stdout or "colours (partial)" in ran.stdout
    assert "Notifications (newest first)" in mirador("agents").stdout
    logged = mirador("agents", "log").stdout
    assert "colours answered" in logged and "answer " in logged

    assert "Disabled colours." in mirador("agents", "disable", "colours").stdout
    assert "was not enabled" in mirador("agents", "disable", "colours").stdout


def test_unknown_agent_and_bad_trigger_are_clear(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    unknown = mirador("agents", "enable", "colors")
    assert unknown.returncode == 1
    assert "no agent named 'colors' (declared: colours)" in unknown.stderr
    bad = {**CONFIG, "agents": [{"name": "x", "trigger": "hourly", "prompt": "Hi"}]}
    (isolated_home / "config.yaml").write_text(yaml.safe_dump(bad))
    broken = mirador("agents")
    assert broken.returncode == 1 and "'daily HH:MM'" in broken.stderr
    assert "Traceback" not in broken.stderr
