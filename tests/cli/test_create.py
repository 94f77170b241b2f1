"""`mirador create`: a persona and chain from a sentence, checked, confirmed, answering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mirador.catalog.manifest import load_manifest
from tests.cli.test_tools_cli import PATIENT


def mirador(*args: str, given: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=240, input=given)


@pytest.mark.timeout(600)
def test_a_persona_from_a_sentence_is_checked_written_and_answers(isolated_home: Path,
                                                                   tmp_path: Path) -> None:
    (isolated_home / "config.yaml").write_text(PATIENT)  # two busy cores: room to answer
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"user": "Is a verbal contract binding?", "assistant": '
                                    '"Often yes; some contracts must be in writing."}\n')
    declined = mirador("create", "Legal document analyzer for contracts", "--examples",
                       str(folder), given="n\n")
    assert "nothing written" in declined.stdout
    assert not (isolated_home / "manifest.yaml").exists()
    made = mirador("create", "Legal document analyzer for contracts", "--examples",
                   str(folder), "--yes")
    assert made.returncode == 0, made.stderr
    manifest = load_manifest(isolated_home / "manifest.yaml")
    persona = manifest.persona("legal-document-analyzer")
    assert persona.triggers == ["legal", "document", "analyzer", "contracts"]
    assert persona.examples[0].user == "Is a verbal contract binding?"
    assert manifest.chain("legal-document-analyzer").steps == ["legal-document-analyzer"]
    assert mirador("models", "check").returncode == 0
    answer = mirador("ask", "--chain", "legal-document-analyzer", "--quiet", "--no-memory",
                     "What should a lease say about repairs?")
    assert answer.returncode == 0 and len(answer.stdout.split()) > 3, answer.stderr
    again = mirador("create", "Legal document analyzer for contracts", "--yes")
    assert again.returncode == 1 and "already in the manifest" in again.stderr


def test_bad_examples_and_train_without_examples_are_refused(isolated_home: Path,
                                                              tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("{\"user\": \"only a question\"}\n")
    bad = mirador("create", "Tax helper", "--examples", str(tmp_path), "--yes")
    assert bad.returncode == 1 and "bad.jsonl:1: not an example" in bad.stderr
    lone = mirador("create", "Tax helper", "--train", "--yes")
    assert lone.returncode == 2 and "--train needs --examples" in lone.stderr
    assert not (isolated_home / "manifest.yaml").exists()
