"""The small files forgetting rewrites: chat history and preload hints, in process."""

from __future__ import annotations

from pathlib import Path

from prompt_toolkit.history import FileHistory

from mirador import privacy
from mirador.models.usage import UsageLog
from mirador.settings import Settings


def test_chat_history_loses_exactly_the_forgotten_lines(tmp_path: Path) -> None:
    path = tmp_path / "chat_history"
    history = FileHistory(str(path))
    for line in ["my pin is 4321", "what is a haiku?", "two\nlines", "my pin is 4321"]:
        history.store_string(line)
    assert privacy.ChatHistory(path).forget([" my pin is 4321 "]) == 2
    assert "4321" not in path.read_text()
    assert list(FileHistory(str(path)).load_history_strings()) == ["two\nlines",
                                                                    "what is a haiku?"]


def test_usage_hints_lose_the_words_of_forgotten_queries(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    log = UsageLog(path)
    log.record("My locker code is ZQX123", ["quick"], ["m"])
    log.record("Plan my week", ["quick"], ["m"])
    assert UsageLog(path).forget(["My locker code is ZQX123"]) == 1
    assert "zqx123" not in path.read_text() and "week" in path.read_text()
    UsageLog(path, keep_queries=False).record("secret words here", ["quick"], ["m"])
    assert "secret" not in path.read_text()


def test_wipe_removes_half_written_copies_too(settings: Settings) -> None:
    (settings.home / "models" / "usage.json.partial").write_text('{"words": ["secret"]}')
    settings.history_path.with_name("chat_history.partial").write_text("+secret\n")
    privacy.wipe(settings)
    assert not list(settings.home.rglob("*.partial"))
