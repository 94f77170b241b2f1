"""`mirador rate`, `why`, `stats` and `/rate` in chat, run as real processes."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from mirador.catalog.manifest import Manifest
from mirador.learning import Learner, LearningStore
from mirador.learning.store import AnswerLog
from mirador.memory import build_store
from mirador.settings import load_settings


def mirador(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, input=input, timeout=240, env=os.environ.copy())


def seed_answers(home: Path, manifest: Manifest, count: int = 3) -> list[str]:
    """Answers logged as the learner would have chosen them (no model run needed)."""
    store = LearningStore.in_home(home)
    learner = Learner(store, manifest, seed=3)
    ids = []
    for i in range(count):
        decision = learner.decide("finance/medium")
        answer_id = f"ans{i:03d}beef"
        store.record_answer(AnswerLog(
            answer_id=answer_id, query=f"Should I pay off my loan early? ({i})",
            domain="finance", complexity="medium", query_type="finance/medium",
            chain=decision.chain, status="ok", chosen_by="learner", created_at=1000.0 + i,
            seconds=2.5, ttft=0.3,
            choice={"decision": decision.to_dict(), "candidates_from": "finance",
                    "domain": "finance", "complexity": "medium", "confidence": 0.9,
                    "neighbours": [["finance", 0.7, "How do I build credit from nothing?"]],
                    "complexity_reasons": ["asks for advice, a plan or writing"]}))
        ids.append(answer_id)
    learner.close()
    return ids


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_rate_why_and_stats_with_a_plot(isolated_home: Path, manifest: Manifest,
                                        tmp_path: Path) -> None:
    first, second, last = seed_answers(isolated_home, manifest)
    result = mirador("rate", "2", "--note", "too long")
    assert result.returncode == 0, result.stderr
    assert f"rated {last} 2/5" in result.stdout
    assert mirador("rate", first[:6], "5").returncode == 0
    assert mirador("rate", second, "4").returncode == 0

    why = mirador("why", last)
    assert why.returncode == 0, why.stderr
    for part in ("query type: finance/medium", "chosen by the learner", "candidates",
                 "why: ", "rated 2/5", "too long", "now, for finance/medium"):
        assert part in why.stdout, part

    stats = mirador("stats", "--plot", str(tmp_path / "learning.png"))
    assert stats.returncode == 0, stats.stderr
    assert "3 answers, 3 rated" in stats.stdout and "finance/medium" in stats.stdout
    assert last in stats.stdout  # recent answers list their ids
    assert png_size(tmp_path / "learning.png") == (800, 700)
    assert (tmp_path / "learning.png").stat().st_size > 10_000


def test_bad_ratings_are_clear_messages_and_change_nothing(isolated_home: Path,
                                                           manifest: Manifest) -> None:
    ids = seed_answers(isolated_home, manifest, count=1)
    for args, expected in ((("7",), "from 1 (bad) to 5"), (("four",), "not 'four'"),
                           (("nope", "3"), "no answer has the id 'nope'"),
                           ((ids[0], "0"), "from 1 (bad) to 5")):
        result = mirador("rate", *args)
        assert result.returncode == 1, args
        assert expected in result.stderr and "Traceback" not in result.stderr
    assert mirador("why", "nope").returncode == 1
    with Learner.for_ratings(load_settings()) as learner:
        assert learner.store.latest_ratings() == []


def test_a_corrupt_ratings_database_is_reported_not_replaced(isolated_home: Path) -> None:
    path = isolated_home / "learning.db"
    path.write_bytes(b"SQLite format 2\x00" + b"\xff" * 4000)
    before = path.read_bytes()
    for command in (["rate", "4"], ["why"], ["stats"]):
        result = mirador(*command)
        assert result.returncode == 1
        assert "cannot be used" in result.stderr and "mv " in result.stderr
        assert "Traceback" not in result.stderr
    assert path.read_bytes() == before


def test_stats_and_why_on_an_empty_home_say_what_to_do(isolated_home: Path) -> None:
    stats = mirador("stats")
    assert stats.returncode == 0 and "no answers yet" in stats.stdout
    why = mirador("why")
    assert why.returncode == 1 and "ask something first" in why.stderr


def test_rate_inside_chat_rates_that_chats_last_answer(tiny_home: Path) -> None:
    result = mirador("chat", "--no-color", input="Suggest a name for my new puppy\n"
                     "/rate 9\n/rate 5 perfect name\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "from 1 (bad) to 5" in result.stderr  # a bad rating is reported, the chat goes on
    assert "(rated 5/5" in result.stderr
    with Learner.for_ratings(load_settings()) as learner:
        (rating,) = learner.store.latest_ratings()
        answer = learner.store.answer(rating.answer_id)
    assert (rating.rating, rating.note) == (5, "perfect name")
    assert answer.query == "Suggest a name for my new puppy" and answer.chosen_by == "learner"
    kept = build_store(load_settings()).get(rating.answer_id)
    assert kept is not None and kept.rating == 5  # memory has it too
