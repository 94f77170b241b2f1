"""`--no-memory` and `memory.enabled: false` write no text anywhere; learning keeps the
answer's statistics without its query."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from mirador.errors import RatingError
from mirador.learning.store import LearningStore
from mirador.ratings import rate_answer
from mirador.settings import load_settings
from tests.privacy.conftest import ONE_STAGE, ask, files_with, mirador

MARKER = "NOMEMMARK456"
SECRET = f"My passport number is {MARKER}."


@pytest.fixture
def fresh(isolated_home: Path) -> Path:
    (isolated_home / "config.yaml").write_text(ONE_STAGE)
    return isolated_home


def _only_statistics(home: Path, answer_id: str) -> None:
    with closing(LearningStore.in_home(home)) as store:
        kept = store.answer(answer_id)
    assert kept.query == "" and kept.embedding is None and kept.query_type


def test_no_memory_writes_the_query_nowhere(fresh: Path) -> None:
    answer_id = ask(fresh, SECRET, "--no-memory")
    assert files_with(fresh, MARKER) == []
    _only_statistics(fresh, answer_id)
    assert "(text not kept)" in mirador(fresh, "stats").stdout


def test_memory_enabled_false_writes_the_query_nowhere(fresh: Path) -> None:
    (fresh / "config.yaml").write_text(ONE_STAGE + "memory: {enabled: false}\n")
    answer_id = ask(fresh, SECRET)
    assert files_with(fresh, MARKER) == []
    assert not (fresh / "memory").exists()
    _only_statistics(fresh, answer_id)
    refused = mirador(fresh, "rate", answer_id, "4", "--note", MARKER)
    assert refused.returncode == 1 and "rate without --note" in refused.stderr
    assert mirador(fresh, "rate", answer_id, "4").returncode == 0
    assert files_with(fresh, MARKER) == []


def test_with_memory_on_the_query_is_kept(fresh: Path) -> None:
    ask(fresh, SECRET)  # the same grep finds it when memory is on: the tests above can fail
    assert "learning.db" in files_with(fresh, MARKER)


def test_the_python_api_refuses_a_note_when_memory_is_off(fresh: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    (fresh / "config.yaml").write_text(ONE_STAGE + "memory: {enabled: false}\n")
    answer_id = ask(fresh, "What is a haiku?")
    monkeypatch.setenv("MIRADOR_HOME", str(fresh))
    with pytest.raises(RatingError, match="keeps no text"):
        rate_answer(load_settings(), answer_id, 3, note="private")
