"""`mirador create`: a persona and chain from a sentence, checked, confirmed, answering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mirador.catalog.manifest import load_manifest
from tests.cli.test_tools_cli import PATIENT


def mirador(*args: str, given: str | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=timeout, input=given)


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


@pytest.mark.timeout(1800)  # a real training run: minutes on two busy cores
def test_create_train_deploys_an_adapter_the_persona_answers_with(isolated_home: Path,
                                                                   tmp_path: Path) -> None:
    from mirador.backends import ChatRequest, Message
    from mirador.learning.adapters import AdapterStore
    from mirador.learning.personal import PersonalShaper
    from mirador.settings import load_settings

    (isolated_home / "config.yaml").write_text(PATIENT + "\ntraining:\n  quality_questions: 0\n")
    folder = tmp_path / "examples"
    folder.mkdir()
    lines = [json.dumps({"user": q, "assistant": f"Clause check: {a}"}) for q, a in CONTRACTS]
    (folder / "contracts.jsonl").write_text("\n".join(lines) + "\n")
    made = mirador("create", "Contract clause checker", "--examples", str(folder), "--train",
                   "--max-steps", "8", "--threads", "1", "--yes", timeout=1500)
    assert made.returncode == 0, made.stderr
    assert "adapter v0001 deployed" in made.stdout, made.stdout + made.stderr
    store = AdapterStore(isolated_home, "contract-clause-checker")
    deployed = store.deployed()
    assert deployed is not None and deployed.meta["base_model"] == "smollm2-135m"
    assert sorted(deployed.meta["train_ids"] + deployed.meta["held_out_ids"]) == [
        f"example-{i:04d}" for i in range(len(CONTRACTS))]
    persona = load_manifest(isolated_home / "manifest.yaml").resolve("contract-clause-checker")
    request = ChatRequest(model=persona.model, messages=(Message("user", "Hi"),))
    (lora,) = PersonalShaper(load_settings()).shape("x", persona, request).loras
    assert lora.path == str(deployed.adapter)  # every request of the persona carries it
    answer = mirador("ask", "--chain", "contract-clause-checker", "--quiet", "--no-memory",
                     "Can a landlord keep my deposit?")
    assert answer.returncode == 0, answer.stderr
    assert len(answer.stdout.split()) > 3
    assert mirador("adapters", "ls", "--persona", "contract-clause-checker").stdout.startswith(
        "* v0001")


def test_create_train_refuses_a_missing_or_thin_examples_folder(isolated_home: Path,
                                                                 tmp_path: Path) -> None:
    missing = mirador("create", "Tax helper", "--examples", str(tmp_path / "nope"), "--train",
                      "--yes")
    assert missing.returncode == 1 and "no such folder" in missing.stderr
    (tmp_path / "one.jsonl").write_text('{"user": "Is rent deductible?", "assistant": "No."}\n')
    thin = mirador("create", "Tax helper", "--examples", str(tmp_path), "--train", "--yes")
    assert thin.returncode == 1 and "--train needs at least 2 examples" in thin.stderr
    steps = mirador("create", "Tax helper", "--max-steps", "3", "--yes")
    assert steps.returncode == 2 and "--max-steps and --threads are for --train" in steps.stderr
    assert not (isolated_home / "manifest.yaml").exists()


CONTRACTS = [
    ("Is a verbal contract binding?", "often yes; some contracts must be in writing."),
    ("What is a force majeure clause?", "it excuses delay caused by events beyond control."),
    ("Can I cancel a gym contract?", "look for the notice period and cancellation fees."),
    ("What does indemnify mean?", "one party pays the other's losses from named claims."),
    ("Should a lease name who repairs?", "yes; it should say who repairs what, and when."),
    ("What is a non-compete clause?", "a promise not to work for rivals for a time."),
]
