"""What each stage is asked: the configured stages by name, chain personas by their own job."""

from __future__ import annotations

from mirador.catalog.manifest import load_manifest
from mirador.orchestration.events import StageAnswer
from mirador.orchestration.hooks import Query
from mirador.orchestration.prompts import STAGE_REQUESTS, stage_messages
from mirador.orchestration.stages import ModelStage

FIRST = {"quick": StageAnswer("Start with the hardest task.", "ok", "m", False)}


def last_turn(stage_name: str, persona_id: str, earlier: dict[str, StageAnswer]) -> str:
    persona = load_manifest(None).resolve(persona_id)
    stage = ModelStage(name=stage_name, persona=persona_id, confidence=0.9)
    messages = stage_messages(Query("What should I focus on today?"), persona, stage, earlier, "")
    return messages[-1].content


def test_a_chain_persona_is_asked_to_do_its_own_job() -> None:
    turn = last_turn("action_planner", "action_planner", FIRST)
    assert "numbered list" in turn and "My question was: What should I focus on today?" in turn


def test_a_configured_stage_is_asked_by_its_stage_name() -> None:
    assert last_turn("deep_analysis", "analyst", FIRST).endswith(STAGE_REQUESTS["deep_analysis"])


def test_a_cut_short_answer_is_said_to_be_so() -> None:
    cut = {"quick": StageAnswer("Start with", "timeout", "m", True)}
    assert "(That answer was cut short.)" in last_turn("synthesis", "synthesizer", cut)


def test_the_first_stage_sees_only_the_question() -> None:
    assert last_turn("quick_response", "quick", {}) == "What should I focus on today?"


def test_an_earlier_stage_that_copied_is_not_shown_again() -> None:
    text = "Start with the hardest task, then answer email after lunch when energy is lower."
    earlier = {"quick_response": StageAnswer(text, "ok", "m", False),
               "deep_analysis": StageAnswer(text + " Also.", "ok", "m", False)}
    persona = load_manifest(None).resolve("synthesizer")
    stage = ModelStage(name="synthesis", persona="synthesizer", confidence=0.9)
    messages = stage_messages(Query("What should I focus on today?"), persona, stage, earlier, "")
    assert [m.content for m in messages if m.role == "assistant"] == [text]
    assert messages[-1].content.endswith(STAGE_REQUESTS["synthesis"])
