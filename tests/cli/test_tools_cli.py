"""Tools from the command line, as real processes on the real default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import mirador

# Room for a tool round on two busy cores; the default model and personas as shipped.
PATIENT = """
stages:
  - {name: quick_response, persona: quick, confidence: 0.6, first_token_timeout: 200,
     total_timeout: 240}
  - {name: synthesis, persona: synthesizer, confidence: 0.95, total_timeout: 240}
"""


@pytest.fixture
def patient_home(isolated_home: Path) -> Path:
    (isolated_home / "config.yaml").write_text(PATIENT)
    return isolated_home


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_ask_routes_arithmetic_to_calculate_and_answers_it(patient_home: Path) -> None:
    result = mirador("ask", "--json", "What is 17.5% of 2,340 plus 12 squared?")
    assert result.returncode == 0, result.stderr
    seen = events(result.stdout)
    assert seen[0]["chain"] == "calculation"
    [call] = [e for e in seen if e["type"] == "tool_call"]
    [answer] = [e for e in seen if e["type"] == "tool_result"]
    assert call["tool"] == "calculate" and answer["ok"] and answer["text"].endswith("= 553.5")
    assert "553.5" in seen[-1]["answer"]


def test_ask_shows_tool_steps_compactly(patient_home: Path) -> None:
    result = mirador("ask", "How much is 345 times 12?")
    assert result.returncode == 0, result.stderr
    assert "⚙ calculate(expression=" in result.stdout and "= 4140" in result.stdout


def test_docs_add_then_a_question_is_answered_from_the_document(patient_home: Path,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "lease.md").write_text(
        "# Lease\n\nThe monthly rent is 1,180 euros, due on the 5th of each month.\n\n"
        "Pets: one cat or one small dog is allowed with a deposit of 300 euros.\n")
    added = mirador("docs", "add", str(folder))
    assert added.returncode == 0 and "1 file(s) indexed" in added.stdout, added.stderr
    assert str(folder) in mirador("docs", "list").stdout
    result = mirador("ask", "--json", "How much is my monthly rent?")
    assert result.returncode == 0, result.stderr
    seen = events(result.stdout)
    assert seen[0]["chain"] == "documents"
    [found] = [e for e in seen if e["type"] == "tool_result"]
    assert found["tool"] == "search_docs" and "1,180 euros" in found["text"]
    assert "1,180" in seen[-1]["answer"] or "1180" in seen[-1]["answer"]
    removed = mirador("docs", "remove", str(folder))
    assert removed.returncode == 0 and "1 file(s) dropped" in removed.stdout


def test_tools_lists_builtins_with_json_schemas(patient_home: Path) -> None:
    listed = json.loads(mirador("tools", "--json").stdout)
    by_name = {t["name"]: t for t in listed}
    assert {"calculate", "search_memory", "search_docs", "read_file"} <= set(by_name)
    assert by_name["calculate"]["parameters"]["required"] == ["expression"]
    assert "calculate" in mirador("tools").stdout


def test_an_unknown_tool_in_the_manifest_is_a_clear_error(patient_home: Path) -> None:
    (patient_home / "manifest.yaml").write_text(
        "personas:\n  - id: quick\n    model: smollm2-135m\n    tools: [teleport]\n")
    result = mirador("ask", "hello")
    assert result.returncode == 1
    assert "names tool 'teleport', which does not exist (available: " in result.stderr
    assert "Traceback" not in result.stderr
