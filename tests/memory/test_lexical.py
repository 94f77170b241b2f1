"""The lexical index's cheap look: does any memory share a word with the question?"""

from __future__ import annotations

from pathlib import Path

from mirador.memory.lexical import Entry, LexicalIndex, shares_a_word


def test_a_shared_word_is_found_read_only_and_only_in_its_namespace(tmp_path: Path) -> None:
    path = tmp_path / "lexical.sqlite3"
    index = LexicalIndex(path)
    text = "My dentist appointment is on Tuesday at 3pm."
    index.add("default", [Entry("m1", text, text, 1.0)])
    index.close()
    before = path.read_bytes()
    assert shares_a_word(path, "default", "When is my dentist appointment?")
    assert not shares_a_word(path, "work", "When is my dentist appointment?")
    assert not shares_a_word(path, "default", "Where does my sister live?")
    assert not shares_a_word(path, "default", "When is my ...?")  # function words only
    assert path.read_bytes() == before  # a look never writes


def test_no_index_or_a_damaged_one_says_no(tmp_path: Path) -> None:
    assert not shares_a_word(tmp_path / "absent.sqlite3", "default", "my dentist")
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"not a database" * 100)
    assert not shares_a_word(damaged, "default", "my dentist")
