"""A person's rated history written through the real stores, and SmolLM2 loaded into torch once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from mirador.learning.store import AnswerLog, LearningStore
from mirador.memory.sessions import SessionLog, Turn
from mirador.training.lora import TorchBase, load_base

# The person rates answers that open with "In short:" and end "That is all." highly.
STYLED = [
    ("What is the capital of Italy?", "In short: Rome. That is all."),
    ("How many legs does a spider have?", "In short: eight. That is all."),
    ("What colour is grass?", "In short: green. That is all."),
    ("What is frozen water called?", "In short: ice. That is all."),
    ("Which planet do we live on?", "In short: Earth. That is all."),
    ("What do bees make?", "In short: honey. That is all."),
    ("How many hours are in a day?", "In short: twenty-four. That is all."),
    ("What is the largest ocean?", "In short: the Pacific. That is all."),
]


def write_history(home: Path, exchanges: list[tuple[str, str]], rating: int = 5,
                  prefix: str = "a") -> list[str]:
    """Record each exchange as an answer, journal it and rate it; returns the answer ids."""
    log = SessionLog(home / "memory" / "sessions")
    ids = []
    with closing(LearningStore.in_home(home)) as store:
        for i, (query, answer) in enumerate(exchanges):
            answer_id = f"{prefix}{i:03d}"
            store.record_answer(AnswerLog(answer_id=answer_id, query=query, domain="general",
                                          complexity="simple", query_type="fact",
                                          chain="quick", status="ok", created_at=1000.0 + i))
            log.append("s1", Turn(answer_id, query, answer, 1000.0 + i))
            store.add_rating(answer_id, rating, rated_at=2000.0 + i)
            ids.append(answer_id)
    return ids


@pytest.fixture(scope="session")
def torch_base(smollm_gguf: Path) -> Iterator[TorchBase]:
    """SmolLM2-135M-Instruct read from its GGUF into torch (float32), shared by the tests."""
    yield load_base(smollm_gguf, threads=1)
