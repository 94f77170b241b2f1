"""The terminal renderer: what a person sees, in the order they see it, and when the gate
ended a stage early or set a later stage aside."""

from __future__ import annotations

import io
import os

from mirador.cli.main import private_copy
from mirador.cli.render import TerminalRenderer
from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    StageAnswer,
    StageEnd,
    StageStart,
    Token,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def stage_start(index: int = 0, stage: str = "quick_response") -> StageStart:
    return StageStart(stage=stage, model="m", persona="quick", confidence=0.6, index=index)


def test_the_plan_and_header_wait_until_the_stage_shows_something() -> None:
    screen = Terminal()
    renderer = TerminalRenderer(out=screen, err=screen)
    renderer.show(Ack(answer_id="a", query="q", complexity="simple", stages=["quick_response"]))
    renderer.show(stage_start())
    screen.write("Preparing the default model (once): 100%\n")  # the model gets ready meanwhile
    renderer.show(Token(text="Hello", stage="quick_response", model="m", confidence=0.6))
    assert screen.getvalue() == ("Preparing the default model (once): 100%\n"
                                 "(simple: quick_response)\n"
                                 "── quick_response · quick on m · confidence 0.60 ──\nHello")


def test_a_stage_that_fails_before_its_first_token_still_gets_its_header() -> None:
    out, err = io.StringIO(), io.StringIO()
    renderer = TerminalRenderer(out=out, err=err)
    renderer.show(stage_start())
    assert out.getvalue() == ""
    renderer.show(ErrorEvent(stage="quick_response", model="m", status="error", message="boom"))
    renderer.show(StageEnd(stage="quick_response", model="m", status="error", tokens=0,
                           seconds=0.1, ttft=None, tokens_per_second=None, partial=True))
    assert out.getvalue().startswith("── quick_response · quick on m")
    assert err.getvalue() == "[error] boom\n"


def test_a_private_copy_still_writes_while_the_descriptor_points_at_dev_null() -> None:
    read_end, write_end = os.pipe()
    saved = os.dup(write_end)
    with open(write_end, "w", encoding="utf-8") as stream:
        copy = private_copy(stream)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, write_end)  # what llama-cpp-python does to fds 1 and 2 during a load
        copy.write('{"type": "ack"}\n')
        copy.close()
        os.dup2(saved, write_end)
        os.close(null)
    os.close(saved)
    with open(read_end, encoding="utf-8") as pipe:
        assert pipe.read() == '{"type": "ack"}\n'


def test_a_stream_without_a_descriptor_is_used_as_it_is() -> None:
    stream = io.StringIO()
    assert private_copy(stream) is stream


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


def test_a_stage_cut_at_its_token_limit_says_so() -> None:
    out = io.StringIO()
    renderer = TerminalRenderer(out=out, err=io.StringIO())
    renderer.show(stage_start())
    renderer.show(Token(text="It depends on", stage="quick_response", model="m",
                        confidence=0.6))
    renderer.show(StageEnd(stage="quick_response", model="m", status="ok", tokens=3,
                           seconds=0.1, ttft=0.05, tokens_per_second=30.0,
                           finish_reason="length"))
    assert out.getvalue().endswith("It depends on\n[quick_response stopped at its token limit]\n")


def test_a_warning_waits_for_the_end_of_the_answers_line() -> None:
    import logging

    from mirador.cli.render import warnings_between_lines

    out, err = Terminal(), Terminal()
    renderer = TerminalRenderer(out=out, err=err)
    with warnings_between_lines(renderer):
        renderer.show(stage_start())
        renderer.show(Token(text="The car I drive is a", stage="quick_response", model="m",
                            confidence=0.6))
        logging.getLogger("mirador").warning("memory could not be recalled for this answer")
        assert err.getvalue() == ""  # not inside the sentence
        renderer.show(Token(text=" Civic.", stage="quick_response", model="m", confidence=0.6))
        logging.getLogger("mirador.models").warning("a second one")
    assert out.getvalue().endswith("The car I drive is a Civic.\n")  # the line was ended
    assert err.getvalue() == ("mirador: memory could not be recalled for this answer\n"
                              "mirador: a second one\n")
    assert not logging.getLogger("mirador").handlers  # removed after the answer
