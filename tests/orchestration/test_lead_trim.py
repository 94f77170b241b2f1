"""A first stage shown what the person told ("Noted: ...") may begin its answer the same
way: that lead is dropped from the stream, whatever pieces it arrives in."""

from __future__ import annotations

import pytest

from mirador.orchestration.prompts import NOTED
from mirador.orchestration.stage_run import LeadTrim


def shown(pieces: list[str]) -> str:
    trim = LeadTrim(NOTED)
    return "".join(trim.feed(p) for p in pieces) + trim.flush()


@pytest.mark.parametrize("pieces", [["Noted: My", " dentist is on Tuesday."],
                                    ["No", "ted", ":", " My dentist is on Tuesday."],
                                    [" Noted: My dentist is on Tuesday."]])
def test_the_copied_lead_is_dropped(pieces: list[str]) -> None:
    assert shown(pieces) == "My dentist is on Tuesday."


@pytest.mark.parametrize("pieces", [["Not", " now: rest first."], ["No", "."],
                                    ["Your appointment", " is on Tuesday."], ["Note"]])
def test_anything_else_passes_as_it_came(pieces: list[str]) -> None:
    assert shown(pieces) == "".join(pieces)


def test_held_pieces_are_let_through_as_soon_as_they_cannot_be_the_lead() -> None:
    trim = LeadTrim(NOTED)
    assert trim.feed("No") == ""
    assert trim.feed("t now.") == "Not now."
    assert trim.feed(" Later.") == " Later."
