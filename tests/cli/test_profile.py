"""`mirador profile`: what is in force and why; pinning one; a bad name or config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def mirador(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=300, env=os.environ.copy())


def test_shows_pins_and_unpins(isolated_home: Path) -> None:
    shown = mirador("profile")
    assert shown.returncode == 0
    assert shown.stdout.startswith("profile: performance (")  # this VM has no battery
    assert "battery" in shown.stdout and "first stage only" in shown.stdout
    pinned = mirador("profile", "battery")
    assert pinned.stdout.startswith("profile: battery (chosen with `mirador profile`")
    assert json.loads((isolated_home / "profile.json").read_text()) == {"profile": "battery"}
    as_json = json.loads(mirador("profile", "--json").stdout)
    assert as_json["profile"] == "battery" and as_json["pinned"] == "battery"
    assert mirador("profile", "auto").stdout.startswith("profile: performance")
    assert not (isolated_home / "profile.json").exists()


def test_a_bad_name_or_config_is_a_clear_error(isolated_home: Path) -> None:
    bad = mirador("profile", "turbo")
    assert bad.returncode == 1 and "'turbo' is not a profile" in bad.stderr
    assert "Traceback" not in bad.stderr
    (isolated_home / "config.yaml").write_text("energy:\n  profiles:\n    x: {max_tokens: 0}\n")
    broken = mirador("profile")
    assert broken.returncode == 1 and "max_tokens" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_an_answer_on_battery_runs_one_stage_and_keeps_its_joules(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        "stages:\n"
        "  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 16}\n"
        "  - {name: deep_analysis, persona: analyst, confidence: 0.85, max_tokens: 16}\n"
        "  - {name: synthesis, persona: synthesizer, confidence: 0.95, max_tokens: 16}\n"
        "routing: {simple: [quick_response, deep_analysis, synthesis], medium: "
        "[quick_response, deep_analysis, synthesis], complex: [quick_response, "
        "deep_analysis, synthesis]}\n"
        "memory: {enabled: false}\n")
    mirador("profile", "battery")
    asked = mirador("ask", "--json", "--local", "How do I keep basil alive?")
    assert asked.returncode == 0, asked.stderr
    events = [json.loads(line) for line in asked.stdout.splitlines()]
    done = events[-1]
    assert done["type"] == "done" and done["profile"] == "battery"
    started = [e["stage"] for e in events if e["type"] == "stage_start"]
    assert len(started) == 1, f"the learner's or the router's plan, trimmed: {started}"
    assert done["energy_j"] > 0 and done["energy_method"] == "cpu-time estimate"
    why = json.loads(mirador("why", "--json").stdout)
    assert why["profile"] == "battery" and why["energy_j"] == done["energy_j"]
    assert "J (cpu-time estimate) under profile battery" in mirador("why").stdout
    stats = json.loads(mirador("stats", "--json").stdout)
    joules = [c["mean_joules"] for t in stats["types"] for c in t["chains"]]
    assert joules == [done["energy_j"]]


def test_threads_chains_and_speculation_are_shown_and_bad_ones_refused(
        isolated_home: Path) -> None:
    config = isolated_home / "config.yaml"
    config.write_text("energy:\n  profiles:\n    lean: {threads: 1, chains: [rapid_decision, "
                      "auto], speculate: false}\n")
    shown = mirador("profile")
    assert shown.returncode == 0, shown.stderr
    rows = {line[2:].split()[0]: line for line in shown.stdout.splitlines()[1:]}
    lean = rows["lean"]
    assert "1 threads" in lean and "chains rapid_decision, auto" in lean
    assert "no speculation" in lean
    battery = rows["battery"]
    assert "any chain" in battery and "no speculation" in battery
    config.write_text("energy:\n  profiles:\n    lean: {chains: [rapid, auto]}\n")
    unknown = mirador("profile")
    assert unknown.returncode == 1 and "allows chain(s) rapid, not in the manifest" in \
        unknown.stderr and "Traceback" not in unknown.stderr
    config.write_text("energy:\n  profiles:\n    lean: {threads: 0}\n")
    zero = mirador("profile")
    assert zero.returncode == 1 and "threads" in zero.stderr and "Traceback" not in zero.stderr
