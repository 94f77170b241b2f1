"""What each stage is shown: its persona's system prompt, the question, and earlier stages' words.

The first stage sees only the question (and the session's earlier turns), so
it can start at once. A later stage sees the conversation so far as a chat:
the question, each earlier stage's answer as the assistant's turn, and, as the
last user turn, what Mirador remembers about the person, the question again,
and this stage's request ("list what that answer missed", "now the final
answer"). On the tuning half of bench/quality.py a tiny model copied the
earlier answer more often when it was shown as quoted text than as its own
turn, and least often when the request asks for a different form (a short
list of what was missed). An earlier stage that only copies another is not
shown again; the quality gate ends a stage that starts copying (quality.py).
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
    from mirador.orchestration.hooks import Query

STAGE_REQUESTS: dict[str, str] = {
    "deep_analysis": (
        "Do not repeat that answer. List two or three things that answer missed: "
        "specific details, risks or trade-offs that matter for my question. "
        "One short line each, starting with '- '."),
    "synthesis": (
        "Now write the final answer to my question in your own words: keep what is right "
        "above and add the missing points. Clear and practical, at most five sentences."),
}
"""What a later stage is asked to do, by stage name; other stages get their persona's
`request` from the manifest, or else `DEFAULT_REQUEST`."""

DEFAULT_REQUEST = "Answer my question again, in your own role, building on the answer above."
CUT_SHORT = "(That answer was cut short.)"


def stage_messages(query: Query, persona: ResolvedPersona, stage: ModelStage,
                   earlier: Mapping[str, StageAnswer], background: str,
                   extra_system: str | None = None) -> tuple[Message, ...]:
    """The chat a stage runs: system prompt (with the caller's `extra_system` after the
    persona's), examples, session history, this stage's request."""
    system = "\n\n".join(s for s in (stage.system_prompt or persona.system, extra_system) if s)
    messages = [Message("system", system)] if system else []
    # prose examples would pull a structured (JSON) answer away from its format
    for example in persona.examples if stage.format is None else ():
        messages += [Message("user", example.user), Message("assistant", example.assistant)]
    messages.extend(query.history)
    spoken = distinct_answers(earlier)
    question = Message("user", query.text, images=query.images)  # the images go with it
    if not spoken and not background:
        messages.append(question)
        return tuple(messages)
    if spoken:
        messages.append(question)
    for i, (_, answer) in enumerate(spoken):
        messages.append(Message("assistant", answer.text))
        if i + 1 < len(spoken):
            messages.append(Message("user", _request(spoken[i + 1][0], answer)))
    request = STAGE_REQUESTS.get(stage.name) or persona.request or DEFAULT_REQUEST
    last = _last_turn(query.text, request, spoken, background)
    messages.append(Message("user", last, images=() if spoken else query.images))
    return tuple(messages)


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
    if not spoken:
        parts.append(question)
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
