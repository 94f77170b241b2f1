"""What each stage is asked: the configured stages by name, chain personas by their own job."""

from __future__ import annotations

from mirador.catalog.manifest import load_manifest
from mirador.orchestration.events import StageAnswer
from mirador.orchestration.hooks import Query, Recollection
from mirador.orchestration.prompts import NOTED, NOTES_HEADING, STAGE_REQUESTS, stage_messages
from mirador.orchestration.stages import ModelStage

FIRST = {"quick": StageAnswer("Start with the hardest task.", "ok", "m", False)}


def last_turn(stage_name: str, persona_id: str, earlier: dict[str, StageAnswer]) -> str:
    persona = load_manifest(None).resolve(persona_id)
    stage = ModelStage(name=stage_name, persona=persona_id, confidence=0.9)
    messages = stage_messages(Query("What should I focus on today?"), persona, stage, earlier,
                              Recollection())
    return messages[-1].content


def test_a_chain_persona_is_asked_to_do_its_own_job() -> None:
    turn = last_turn("action_planner", "action_planner", FIRST)
    assert "numbered list" in turn and "My question was: What should I focus on today?" in turn


QUICK = "Start with the hardest task, then answer email after lunch when energy is lower."
POINTS = "- Mistaking busy work for progress.\n- Forgetting the deadline on Friday."


def messages_for(stage_name: str, persona_id: str, earlier: dict[str, StageAnswer]) -> list:
    persona = load_manifest(None).resolve(persona_id)
    stage = ModelStage(name=stage_name, persona=persona_id, confidence=0.9)
    return list(stage_messages(Query("What should I focus on today?"), persona, stage,
                               earlier, Recollection()))


def test_deep_analysis_is_not_shown_the_first_answer_and_asked_its_own_question() -> None:
    messages = messages_for("deep_analysis", "analyst",
                            {"quick_response": StageAnswer(QUICK, "ok", "m", False)})
    assert all(QUICK not in m.content for m in messages)
    assert messages[-1].content == ("What should I focus on today?\n\n"
                                    + STAGE_REQUESTS["deep_analysis"])


def test_synthesis_gets_the_analysis_as_notes_and_not_the_first_answer() -> None:
    earlier = {"quick_response": StageAnswer(QUICK, "ok", "m", False),
               "deep_analysis": StageAnswer(POINTS, "ok", "m", False)}
    messages = messages_for("synthesis", "synthesizer", earlier)
    assert messages[0].role == "system" and f"{NOTES_HEADING}\n{POINTS}" in messages[0].content
    assert all(QUICK not in m.content for m in messages)
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[-1].content == "What should I focus on today?"


def test_synthesis_without_an_analysis_answers_the_question_afresh() -> None:
    messages = messages_for("synthesis", "synthesizer",
                            {"quick_response": StageAnswer(QUICK, "ok", "m", False)})
    assert [m.role for m in messages] == ["system", "user"]
    assert NOTES_HEADING not in messages[0].content
    assert messages[-1].content == "What should I focus on today?"


def test_a_chain_persona_sees_every_earlier_answer() -> None:
    earlier = {"quick": StageAnswer(QUICK, "ok", "m", False),
               "analyst": StageAnswer(POINTS, "ok", "m", False)}
    messages = messages_for("action_planner", "action_planner", earlier)
    assert [m.content for m in messages if m.role == "assistant"] == [QUICK, POINTS]


def test_a_cut_short_answer_is_said_to_be_so() -> None:
    cut = {"quick": StageAnswer("Start with", "timeout", "m", True)}
    assert "(That answer was cut short.)" in last_turn("action_planner", "action_planner", cut)


def test_the_first_stage_sees_only_the_question() -> None:
    assert last_turn("quick_response", "quick", {}) == "What should I focus on today?"


def test_an_earlier_stage_that_copied_is_not_shown_again() -> None:
    earlier = {"quick": StageAnswer(QUICK, "ok", "m", False),
               "analyst": StageAnswer(QUICK + " Also.", "ok", "m", False)}
    messages = messages_for("action_planner", "action_planner", earlier)
    assert [m.content for m in messages if m.role == "assistant"] == [QUICK]


TOLD = Recollection(text="Earlier conversations that bear on this:\n- 2026-11-28: I told you: "
                         "\"My dentist appointment is on Tuesday at 3pm.\"",
                    told=("My dentist appointment is on Tuesday at 3pm.",))


def test_a_first_stage_is_shown_what_the_person_told_as_earlier_turns() -> None:
    persona = load_manifest(None).resolve("quick")
    stage = ModelStage(name="quick_response", persona="quick", confidence=0.6)
    messages = stage_messages(Query("When is my dentist appointment?"), persona, stage, {},
                              TOLD, first=True)
    told_at = [m.content for m in messages].index(TOLD.told[0])
    assert messages[told_at].role == "user"
    assert messages[told_at + 1].content == NOTED + TOLD.told[0]
    assert messages[-1].content == "When is my dentist appointment?"  # the question, bare
    assert all("Earlier conversations" not in m.content for m in messages)


def test_a_later_stage_gets_the_recollection_as_notes_not_as_turns() -> None:
    persona = load_manifest(None).resolve("analyst")
    stage = ModelStage(name="deep_analysis", persona="analyst", confidence=0.8)
    messages = stage_messages(Query("When is my dentist appointment?"), persona, stage,
                              {"quick_response": StageAnswer(QUICK, "ok", "m", False)}, TOLD)
    assert all(not m.content.startswith(NOTED) for m in messages)
    assert "What you know about me:\n" + TOLD.text in messages[-1].content
