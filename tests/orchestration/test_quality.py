"""The quality gate's parts: loop watch, trimming, scores (real MiniLM) and the choice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mirador.embeddings.minilm import MiniLMEmbedder
from mirador.orchestration.quality import (
    CopyWatch,
    LoopWatch,
    StageQuality,
    choose,
    score_stage,
    trim_loop,
)

LOOPING = ("Travel light and book early. It's about the journey, and it's about the journey, "
           "and it's about the journey, and it's about the journey.")


@pytest.fixture(scope="module")
def minilm() -> Iterator[MiniLMEmbedder]:
    yield MiniLMEmbedder.load()


def stream(watch: LoopWatch | CopyWatch, text: str, size: int = 3) -> int | None:
    """Feed `text` in small pieces; the offset at which a loop was reported, if one was."""
    for start in range(0, len(text), size):
        if watch.feed(text[start:start + size]) is not None:
            return start + size
    return None


def test_a_loop_is_caught_while_streaming_and_trimmed_away() -> None:
    watch = LoopWatch()
    stopped = stream(watch, LOOPING)
    assert stopped is not None and stopped < len(LOOPING) * 0.8, "caught early in the loop"
    caught = LoopWatch()
    loop = next(filter(None, (caught.feed(word + " ") for word in LOOPING.split(" "))))
    assert "about the journey" in loop.phrase and "again and again" in loop.describe()
    assert trim_loop(caught.text, loop) == "Travel light and book early."


def test_ordinary_text_and_lists_are_not_loops() -> None:
    text = ("1. Make a list of what you need for the week.\n2. Make a list of meals you like.\n"
            "3. Shop once, with the list, after you have eaten. Store brands cost less, and "
            "frozen vegetables keep for months.")
    assert stream(LoopWatch(), text) is None
    assert stream(LoopWatch(), "very " * 3) is None


def test_a_long_passage_said_twice_is_a_loop() -> None:
    once = "Drink a glass of water as soon as you wake up, before coffee. "
    assert stream(LoopWatch(), once + once) is not None


def test_scores_flag_what_is_wrong(minilm: MiniLMEmbedder) -> None:
    question = "How can I sleep better when I work late shifts?"
    good = score_stage(question, "Keep the same sleep hours even on days off, darken the "
                       "bedroom with blackout curtains and avoid caffeine in the last half of "
                       "your shift.", {}, minilm)
    assert good.sound and good.relevance is not None and good.relevance > 0.4
    echo = score_stage(question, "How can I sleep better when I work late shifts?", {}, minilm)
    assert "echoes the question" in echo.flags
    off = score_stage(question, "Paris is the capital of France and sits on the Seine.", {},
                      minilm)
    assert "off-topic" in off.flags and off.relevance is not None and off.relevance < 0.25
    looping = score_stage(question, LOOPING, {}, minilm)
    assert "repetitive" in looping.flags
    copy = score_stage(question, good_text := "Keep the same sleep hours even on days off.",
                       {"quick_response": good_text + " Darken the room."}, minilm)
    assert copy.flags == ("copies quick_response",)
    assert score_stage(question, "  ", {}, minilm).flags == ("empty",)


def q(relevance: float, *flags: str) -> StageQuality:
    return StageQuality(relevance=relevance, repetition=0.0, flags=flags)


def test_the_latest_sound_stage_is_chosen_and_the_rest_set_aside() -> None:
    order = ["quick_response", "deep_analysis", "synthesis"]
    assert choose(order, {n: q(0.6) for n in order}).stage == "synthesis"
    looped = choose(order, {"quick_response": q(0.6), "deep_analysis": q(0.5),
                            "synthesis": q(0.6, "looped")})
    assert looped.stage == "deep_analysis" and looped.set_aside == ("synthesis",)
    assert "synthesis: looped" in looped.reason
    copied = choose(order, {"quick_response": q(0.6), "deep_analysis": q(0.6),
                            "synthesis": q(0.6, "copies deep_analysis")})
    assert copied.stage == "deep_analysis" and "synthesis: copies deep_analysis" in copied.reason
    worse = choose(order, {"quick_response": q(0.7), "deep_analysis": q(0.3),
                           "synthesis": q(0.35, "copies deep_analysis")})
    assert worse.stage == "quick_response"
    assert worse.set_aside == ("deep_analysis", "synthesis")
    none = choose(order, {"quick_response": q(0.2, "off-topic"), "deep_analysis": q(0.5, "looped"),
                          "synthesis": q(0.1, "off-topic", "repetitive")})
    assert none.stage == "deep_analysis" and "no stage was sound" in none.reason


FIRST = ("A used car costs insurance, repairs and parking on top of its price, while a monthly "
         "bus pass is a fixed cost you already know, so keep the bus unless it wastes hours.")


def test_a_copy_of_an_earlier_stage_is_caught_while_streaming() -> None:
    watch = CopyWatch({"quick_response": FIRST})
    copy = next(filter(None, (watch.feed(w + " ") for w in ("Well, " + FIRST).split(" "))))
    assert copy.stage == "quick_response" and "copies quick_response" in copy.describe()
    assert len(watch.text.split()) < len(FIRST.split()), "caught before the copy ended"


def test_a_stage_that_quotes_a_little_and_goes_on_is_no_copy() -> None:
    own = ("- A used car costs insurance, repairs and parking, and you have not priced those. "
           "- Count how many trips the bus cannot make, and what a taxi would cost for them. "
           "- If the bus wastes an hour a day, that time has a price too.")
    assert stream(CopyWatch({"quick_response": FIRST}), own) is None
    assert stream(CopyWatch({}), FIRST) is None


def test_a_timed_out_stage_beats_finished_stages_that_only_copy_it() -> None:
    """The quick stage ran out of time with a good partial answer; the later stages finished
    but copied it: the answer is the partial one, not a copy."""
    from mirador.orchestration.events import Done, StageAnswer
    from mirador.orchestration.outcome import judged
    from mirador.orchestration.quality import Judge

    first = FIRST
    answers = {"quick": StageAnswer(first, "timeout", "m", partial=True, tokens=40),
               "personal_context": StageAnswer(first[:90], "ok", "m", partial=False, tokens=20),
               "action_planner": StageAnswer(first[:90], "ok", "m", partial=False, tokens=20)}

    async def run() -> Done:
        judge = Judge("Should I buy a used car or keep the bus?", None, stages=3)
        for name, answer in answers.items():
            judge.stage_ended(name, answer.text, None)
        done = Done(answer_id="a", status="partial", answer=first[:90],
                    final_stage="action_planner", answers=answers, seconds=1.0, ttft=0.1)
        return await judged(done, judge)

    done = asyncio.run(run())
    assert done.final_stage == "quick" and done.answer == first
    assert set(done.set_aside) == {"personal_context", "action_planner"}
