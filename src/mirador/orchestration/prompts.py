"""What each stage is shown: its persona's system prompt, the question, and earlier stages' words.

The first stage sees only the question (and the session's earlier turns), so
it can start at once. A later stage sees the conversation so far as a chat:
the question, the earlier answers it is shown (`STAGE_VIEWS`) as the
assistant's turns, and, as the last user turn, what Mirador remembers about
the person, the question again, and this stage's request.

A tiny model shown an earlier answer mostly copies it (70% of deep_analysis
and 72% of synthesis answers on bench/quality.py before this), so the
configured stages are shown less: `deep_analysis` sees no earlier answer and
is asked a different question about the query (what to check, risks,
specifics); `synthesis` sees only deep_analysis's points and writes the final
answer from them. Chain personas (stages named after them) see every earlier
answer. An earlier stage that only copies another is not shown again; the
quality gate ends a stage that starts copying (quality.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mirador.backends import Message
from mirador.catalog.manifest import ResolvedPersona, SamplingOptions
from mirador.orchestration.events import StageAnswer
from mirador.orchestration.quality import COPY_OVERLAP, overlap
from mirador.orchestration.stages import ModelStage

if TYPE_CHECKING:
    from mirador.orchestration.hooks import Query, Recollection

STAGE_REQUESTS: dict[str, str] = {
    "deep_analysis": "What are common mistakes and risks here? List three, one line each.",
    "synthesis": (
        "Now write the final answer to my question in your own words, covering the points "
        "above that matter. Clear and practical, at most five sentences."),
}
"""What a later stage is asked to do, by stage name; other stages get their persona's
`request` from the manifest, or else `DEFAULT_REQUEST`."""

STAGE_VIEWS: dict[str, tuple[str, ...]] = {
    "deep_analysis": (),
    "synthesis": ("deep_analysis",),
}
"""Which earlier stages' answers a stage is shown, by stage name; a stage not named here
is shown every earlier answer."""

AS_NOTES: frozenset[str] = frozenset({"synthesis"})
"""Stages shown the earlier answers as notes in the system prompt (`NOTES_HEADING`), then
asked the question itself: on the tuning half, synthesis shown deep_analysis's points as
the assistant's turn copied them; given them as notes it answered the question."""
NOTED = "Noted: "  # the reply shown after what the person told, followed by it
"""A first stage is shown what the person told as their turn and this reply repeating it:
on 6 hand-written facts x 4 personas (24 cases, no held-out half), SmolLM2 answered 16
from turns with this reply, 11 with "Noted, I'll remember that." (which it copied) and
13 from the facts put before the question in one turn."""
NOTES_HEADING = "Points to keep in mind (from an analysis of the question):"

DEFAULT_REQUEST = "Answer my question again, in your own role, building on the answer above."
CUT_SHORT = "(That answer was cut short.)"


def stage_messages(query: Query, persona: ResolvedPersona, stage: ModelStage,
                   earlier: Mapping[str, StageAnswer], recalled: Recollection,
                   extra_system: str | None = None, first: bool = False
                   ) -> tuple[Message, ...]:
    """The chat a stage runs: system prompt (with the caller's `extra_system` after the
    persona's), examples, session history, this stage's request. A `first` stage is shown
    what the person told as earlier turns of the conversation; later ones get the whole
    recollection as notes beside the question."""
    background = "" if first else recalled.text
    notes = _notes(stage.name, earlier)
    system = "\n\n".join(s for s in (stage.system_prompt or persona.system, notes,
                                      extra_system) if s)
    messages = [Message("system", system)] if system else []
    # prose examples would pull a structured (JSON) answer away from its format
    for example in persona.examples if stage.format is None else ():
        messages += [Message("user", example.user), Message("assistant", example.assistant)]
    for told in recalled.told if first else ():
        messages += [Message("user", told), Message("assistant", f"{NOTED}{told}")]
    messages.extend(query.history)
    spoken = [] if notes else shown_answers(stage.name, earlier)
    question = Message("user", query.text, images=query.images)  # the images go with it
    if not earlier and not background:
        messages.append(question)
        return tuple(messages)
    if spoken:
        messages.append(question)
    for i, (_, answer) in enumerate(spoken):
        messages.append(Message("assistant", answer.text))
        if i + 1 < len(spoken):
            messages.append(Message("user", _request(spoken[i + 1][0], answer)))
    last = _last_turn(query.text, _stage_request(stage.name, persona, earlier, spoken),
                      spoken, background)
    messages.append(Message("user", last, images=() if spoken else query.images))
    return tuple(messages)


def _stage_request(stage_name: str, persona: ResolvedPersona,
                   earlier: Mapping[str, StageAnswer],
                   spoken: list[tuple[str, StageAnswer]]) -> str:
    """What the stage is asked after the question: its request when it is shown earlier
    answers or is meant to see none (`STAGE_VIEWS` empty); nothing for a first stage, or
    for one whose earlier answers are all missing (it answers the question afresh)."""
    if not earlier or (not spoken and STAGE_VIEWS.get(stage_name) != ()) or \
            stage_name in AS_NOTES:
        return ""
    return STAGE_REQUESTS.get(stage_name) or persona.request or DEFAULT_REQUEST


def _notes(stage_name: str, earlier: Mapping[str, StageAnswer]) -> str:
    """The earlier answers as notes for the system prompt, for a stage in `AS_NOTES`."""
    if stage_name not in AS_NOTES:
        return ""
    texts = [a.text for _, a in shown_answers(stage_name, earlier)]
    return f"{NOTES_HEADING}\n" + "\n\n".join(texts) if texts else ""


def shown_answers(stage_name: str, earlier: Mapping[str, StageAnswer]
                  ) -> list[tuple[str, StageAnswer]]:
    """The earlier answers stage `stage_name` is shown (`STAGE_VIEWS`), each with text and
    not a copy of one before it (a copy is not shown, whoever it copied)."""
    view = STAGE_VIEWS.get(stage_name)
    return [(n, a) for n, a in distinct_answers(earlier) if view is None or n in view]


def distinct_answers(earlier: Mapping[str, StageAnswer]) -> list[tuple[str, StageAnswer]]:
    """The earlier stages' answers worth showing: with text, and not a copy of one before."""
    kept: list[tuple[str, StageAnswer]] = []
    for name, answer in earlier.items():
        if answer.text and all(overlap(answer.text, k.text) < COPY_OVERLAP for _, k in kept):
            kept.append((name, answer))
    return kept


def _request(stage_name: str, previous: StageAnswer | None) -> str:
    cut = f"{CUT_SHORT} " if previous is not None and previous.partial else ""
    return cut + STAGE_REQUESTS.get(stage_name, DEFAULT_REQUEST)


def _last_turn(question: str, request: str, spoken: list[tuple[str, StageAnswer]],
               background: str) -> str:
    parts = []
    if background:
        parts.append(f"What you know about me:\n{background}")
    if not spoken:  # asked afresh: the question, then this stage's own request
        parts.append(f"{question}\n\n{request}" if request else question)
        return "\n\n".join(parts)
    parts.append(f"My question was: {question}")
    cut = f"{CUT_SHORT} " if spoken[-1][1].partial else ""
    parts.append(cut + request)
    return "\n\n".join(parts)


def stage_options(stage: ModelStage) -> SamplingOptions:
    """The sampling options a stage sets over its persona's."""
    return SamplingOptions(temperature=stage.temperature, max_tokens=stage.max_tokens)


def request_options(base: SamplingOptions, wished: SamplingOptions | None,
                    budget: int | None) -> SamplingOptions:
    """`base` (persona and stage) with the caller's wishes over it: their stop strings
    beside the persona's, and at most `budget` tokens (what the answer has left)."""
    options = base.merged(wished)
    if wished is not None and wished.stop and base.stop:
        options = options.model_copy(update={"stop": [*base.stop, *wished.stop]})
    if budget is not None:
        options = options.model_copy(update={"max_tokens": min(options.max_tokens or budget,
                                                               budget)})
    return options
