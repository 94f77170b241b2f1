"""What each stage is shown: its persona's system prompt, the query, and earlier stages' words.

The first stage sees only the question (and the session's earlier turns), so
it can start at once. Later stages see the question, what Mirador remembers
that bears on it, and each earlier stage's answer, marked when it was cut short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mirador.backends import Message
from mirador.models.manifest import ResolvedPersona, SamplingOptions
from mirador.orchestration.events import StageAnswer
from mirador.orchestration.stages import ModelStage

if TYPE_CHECKING:
    from mirador.orchestration.orchestrator import Query

_TITLES = {"quick_response": "First answer", "deep_analysis": "Analysis",
           "synthesis": "Synthesis"}


def stage_messages(query: Query, persona: ResolvedPersona, stage: ModelStage,
                   earlier: Mapping[str, StageAnswer], background: str) -> tuple[Message, ...]:
    """The chat a stage runs: system prompt, examples, session history, this stage's request."""
    system = stage.system_prompt or persona.system
    messages = [Message("system", system)] if system else []
    # prose examples would pull a structured (JSON) answer away from its format
    for example in persona.examples if stage.format is None else ():
        messages += [Message("user", example.user), Message("assistant", example.assistant)]
    messages.extend(query.history)
    messages.append(Message("user", _user_turn(query.text, earlier, background)))
    return tuple(messages)


def _user_turn(text: str, earlier: Mapping[str, StageAnswer], background: str) -> str:
    if not earlier and not background:
        return text
    parts = [f"Question: {text}"]
    if background:
        parts.append(f"What you know about the person asking:\n{background}")
    for name, answer in earlier.items():
        if not answer.text:
            continue
        title = _TITLES.get(name, name.replace("_", " ").capitalize())
        cut = " (cut short)" if answer.partial else ""
        parts.append(f"{title}{cut}:\n{answer.text}")
    return "\n\n".join(parts) + "\n"


def stage_options(stage: ModelStage) -> SamplingOptions:
    """The sampling options a stage sets over its persona's."""
    return SamplingOptions(temperature=stage.temperature, max_tokens=stage.max_tokens)
