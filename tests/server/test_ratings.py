"""Ratings on the server go through its own learner and memory, after the rated answer's
record is written: a rating sent the moment an answer is out lands on it. Real SmolLM2,
real uvicorn, real Chroma and SQLite."""

from __future__ import annotations

import httpx

from mirador.memory import Memory
from tests.server.conftest import ServerThread


def test_a_rating_sent_right_after_an_answer_lands_on_it_and_in_memory(
        server: ServerThread) -> None:
    done = httpx.post(f"{server.url}/mirador/ask", timeout=120,
                      json={"query": "Name one calm thing to do tonight.", "stream": False,
                            "stages": ["quick_response"]}).json()
    last = httpx.post(f"{server.url}/mirador/rate", timeout=60, json={"rating": 5})
    assert last.status_code == 200, last.text
    assert last.json()["answer_id"] == done["answer_id"]  # "the last answer" is this one
    again = httpx.post(f"{server.url}/mirador/rate", timeout=60,
                       json={"answer_id": done["answer_id"], "rating": 2})
    assert again.status_code == 200, again.text
    orchestrator = server.runtime.orchestrator
    memory = orchestrator.context
    assert isinstance(memory, Memory)
    kept = memory.store().get(done["answer_id"])
    assert kept is not None and kept.rating == 2  # in the live store, not a second client
    learner = orchestrator.chooser
    [latest] = [r for r in learner.store.latest_ratings()  # type: ignore[union-attr]
                if r.answer_id == done["answer_id"]]
    assert latest.rating == 2
