"""The terminal shows when the gate ended a stage early or set a later stage aside."""

from __future__ import annotations

import io

from mirador.cli.render import TerminalRenderer
from mirador.orchestration.events import Done, StageAnswer, StageEnd, StageStart, Token


def test_a_stage_ended_early_and_set_aside_is_shown() -> None:
    out = io.StringIO()
    renderer = TerminalRenderer(out=out, err=io.StringIO())
    events = [
        StageStart(stage="quick_response", model="m", persona="quick", confidence=0.6, index=0),
        Token(text="Start with the hardest task.", stage="quick_response", model="m",
              confidence=0.6),
        StageEnd(stage="quick_response", model="m", status="ok", tokens=5, seconds=0.5,
                 ttft=0.1, tokens_per_second=10.0),
        StageStart(stage="synthesis", model="m", persona="synthesizer", confidence=0.95,
                   index=1),
        Token(text="Rest well and rest well and rest well", stage="synthesis", model="m",
              confidence=0.95),
        StageEnd(stage="synthesis", model="m", status="ok", tokens=9, seconds=0.5, ttft=0.1,
                 tokens_per_second=10.0, reason="ended early: it fell into a repetition loop"),
        Done(answer_id="a", status="ok", answer="Start with the hardest task.",
             final_stage="quick_response",
             answers={"quick_response": StageAnswer("Start with the hardest task.", "ok", "m",
                                                    False)},
             set_aside=["synthesis"], chosen_because="quick_response chosen",
             quality={"synthesis": {"relevance": 0.4, "repetition": 0.5, "flags": ["looped"]}}),
    ]
    for event in events:
        renderer.show(event)
    text = out.getvalue()
    assert "[synthesis ended early: it fell into a repetition loop]" in text
    assert text.rstrip().endswith(
        "── answer: quick_response's; set aside synthesis (looped) ──")


def test_quiet_prints_the_chosen_answer_only() -> None:
    out = io.StringIO()
    done = Done(answer_id="a", status="ok", answer="The best one.", final_stage="quick_response",
                set_aside=["synthesis"])
    TerminalRenderer(quiet=True, out=out, err=io.StringIO()).show(done)
    assert out.getvalue() == "The best one.\n"
