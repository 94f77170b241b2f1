"""Speculative prefill: read the likely first stage's prompt while the chain is chosen.

Choosing a chain takes time (the learner embeds and classifies the query; the tool and
document routes may search). Most chains, and the complexity routing, begin with the
first configured stage's persona (`quick`), whose prompt is known before the choice: its
system prompt, examples, the session's turns and the query. So while the choice is made,
that prompt is read into the model's cache (`Prefills`); if the chosen plan's first stage
runs the same prompt on the same model, it starts generating at once.

A wrong guess costs the prompt's evaluation, which the answer's joules include (the meter
is read before planning), and may delay the real first stage while it finishes; a guess
still waiting for the model when the choice is made is cancelled. `Done.speculated` says
which it was. Only under a profile with `prefill` and `speculate` on (no built-in has
`prefill`: bench/speculation.py found it did not pay), and only for a backend that
declares `prefills` (llama.cpp).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mirador.backends import ChatRequest, Message
from mirador.backends.base import prefiller_of
from mirador.catalog.manifest import ResolvedPersona
from mirador.errors import MiradorError, report_unexpected
from mirador.models.manager import ModelManager
from mirador.orchestration import prompts
from mirador.orchestration.hooks import Limits, Query, Recollection
from mirador.orchestration.stages import ModelStage, Overrides

log = logging.getLogger("mirador")


@dataclass
class Prefill:
    """A first stage's prompt being read ahead of the choice."""

    persona: ResolvedPersona
    messages: tuple[Message, ...]
    task: asyncio.Task[int]

    used: bool | None = None  # decided by `settle`

    def settle(self, persona: ResolvedPersona, messages: tuple[Message, ...]) -> None:
        """The choice is made: the first stage runs `persona` on `messages`. A wrong guess
        not yet evaluating is cancelled."""
        self.used = persona.model == self.persona.model and messages == self.messages
        if not self.used and not self.task.done():
            self.task.cancel()

    async def describe(self, first: str) -> str:
        """One sentence for `Done.speculated` (`first`: the persona the first stage ran)."""
        try:
            tokens = await self.task
        except asyncio.CancelledError:
            return f"a prefill of {self.persona.id}'s prompt was cancelled unread: the " \
                   f"first stage runs {first}"
        except MiradorError as exc:
            return f"prefilling {self.persona.id}'s prompt failed ({exc})"
        if self.used:
            return f"{self.persona.id}'s prompt was read ({tokens} tokens) while the chain " \
                   "was chosen, and used"
        return f"{self.persona.id}'s prompt was read ({tokens} tokens) while the chain was " \
               f"chosen, and wasted (the first stage runs {first}); its joules are counted"


def start_prefill(manager: ModelManager, persona: ResolvedPersona,
                  messages: tuple[Message, ...]) -> Prefill | None:
    """Begin reading `messages` into `persona`'s model, if its backend can; else None."""
    try:
        backend = prefiller_of(manager.backend(persona.model.backend))
    except MiradorError:
        return None  # the stage itself will report the backend
    if backend is None:
        return None
    request = ChatRequest(model=persona.model, messages=messages, loras=persona.loras)

    async def read() -> int:
        await manager.ensure_loaded(persona.model)
        return await backend.prefill(request)

    task = asyncio.ensure_future(read())
    task.add_done_callback(_report)
    return Prefill(persona, messages, task)


def _report(task: asyncio.Task[int]) -> None:
    """A failed prefill costs nothing but its time: the stage reads its own prompt."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    if isinstance(exc, MiradorError):
        log.info("the speculative prefill failed (%s); the first stage reads its prompt", exc)
    else:
        report_unexpected(log, "the speculative prefill", exc)  # type: ignore[arg-type]


def may_prefill(stage: ModelStage, persona: ResolvedPersona, limits: Limits | None,
                 wish: Overrides) -> bool:
    """Whether the first stage's prompt may be read ahead: the profile speculates, and the
    backend will not rewrite the prompt (tools, JSON) or reset its cache (a seed)."""
    seeded = persona.options.seed is not None or (wish.options is not None
                                                  and wish.options.seed is not None)
    return (limits is not None and limits.speculate and limits.prefill and not persona.tools
            and stage.format is None and not seeded)


def first_messages(query: Query, stage: ModelStage, persona: ResolvedPersona,
                    wish: Overrides) -> tuple[Message, ...]:
    """The chat the first stage runs (no earlier stages, no recalled background)."""
    return prompts.stage_messages(query, persona, stage, {}, Recollection(), wish.system,
                                  first=True)
