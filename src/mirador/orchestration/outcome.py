"""How an answer ends: the `Done` event from every stage's answer, with the best
stage's text as the answer (`quality.Judge` says which, and why)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Literal

from mirador.orchestration import quality
from mirador.orchestration.events import Done, StageAnswer


def done_event(answer_id: str, answers: dict[str, StageAnswer], started: float,
               first_token: float | None) -> Done:
    """The answer's `Done`: the last usable stage's text, or an error when none has any."""
    seconds = round(time.perf_counter() - started, 4)
    ttft = None if first_token is None else round(first_token, 4)
    ok, usable = _with_text(answers)
    usable = ok or usable
    if not usable:
        reasons = "; ".join(f"{n}: {a.error or a.status}" for n, a in answers.items())
        return Done(answer_id=answer_id, status="error", answer="", final_stage=None,
                    answers=answers, seconds=seconds, ttft=ttft,
                    error=f"every stage failed ({reasons or 'no stages ran'}); check that the "
                          "models load ('mirador models') and that any server they need is running")
    final = usable[-1]
    status: Literal["ok", "partial"] = "ok" if len(ok) == len(answers) else "partial"
    return Done(answer_id=answer_id, status=status, answer=answers[final].text,
                final_stage=final, answers=answers, seconds=seconds, ttft=ttft,
                tokens=sum(a.tokens for a in answers.values()))


async def judged(done: Done, judge: quality.Judge) -> Done:
    """`done` with the best stage's text as the answer, and every stage's scores."""
    if done.status == "error":
        return done
    ok, usable = _with_text(done.answers)
    choice, scores = await judge.verdict(ok or usable)
    if choice is not None and not scores[choice.stage].sound and len(usable) > len(ok):
        # no finished stage is sound (say, each copies a first stage that ran out of time):
        # the partial answer a stage kept when it timed out may be the one that did its job
        choice, scores = await judge.verdict(usable)
    report = {name: {"relevance": s.relevance, "repetition": s.repetition,
                     "flags": list(s.flags)} for name, s in scores.items()}
    if choice is None:
        return replace(done, quality=report)
    return replace(done, answer=done.answers[choice.stage].text, final_stage=choice.stage,
                   chosen_because=choice.reason, set_aside=list(choice.set_aside),
                   quality=report)


def _with_text(answers: dict[str, StageAnswer]) -> tuple[list[str], list[str]]:
    """The stages, in order, that finished ok with text, and all that have any text (a
    stage that timed out keeps its partial answer)."""
    usable = [name for name, a in answers.items() if a.text]
    return [name for name in usable if answers[name].status == "ok"], usable
