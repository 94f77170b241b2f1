"""What makes every answer the person's own: Model DNA and their deployed adapter.

`PersonalShaper` is the planner's `PlanShaper`: Model DNA's technical depth
decides which of the routed stages run, and its verbosity which answer length
the judge favours. It is also the orchestrator's `RequestShaper`: before each stage runs
it adds the DNA's line to the system prompt and scales the persona's max tokens
by its verbosity, whatever the backend; and, for a persona on a GGUF model with
no adapter of its own, it adds the adapter `mirador train` deployed for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace

from mirador.backends import ChatRequest, Message
from mirador.catalog.manifest import LoraAdapter, ResolvedPersona
from mirador.errors import MiradorError
from mirador.learning.adapters import AdapterStore
from mirador.learning.dna import DNA, Version, shaping, staged
from mirador.learning.store import DB_NAME, LearningStore
from mirador.orchestration.hooks import Plan
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings

log = logging.getLogger("mirador.learning")


class PersonalShaper:
    """Applies Model DNA and the deployed personal adapter to each stage's request."""

    def __init__(self, settings: Settings, store: LearningStore | None = None) -> None:
        self.settings = settings
        self.store = store  # the learner's, when learning is on; else opened per request

    def dna(self) -> Version:
        """The DNA in force (never set: version 0, and no ratings database is created)."""
        if self.store is not None:
            return self.store.dna()
        if not (self.settings.home / DB_NAME).exists():
            return Version(0, DNA(), "default", 0.0)
        with closing(LearningStore.in_home(self.settings.home)) as store:
            return store.dna()

    def shape(self, stage: str, persona: ResolvedPersona, request: ChatRequest) -> ChatRequest:
        """`request` with the DNA applied and the persona's deployed adapter added."""
        version = self.dna()
        if version.number:  # a profile that was never set shapes nothing
            request = apply_dna(version, request)
        return self._with_adapter(persona, request)

    def shape_plan(self, plan: Plan, full: Sequence[ModelStage]) -> Plan:
        """`plan` with the stages the DNA's technical depth calls for (routed plans only:
        a chain the learner picked keeps its steps) and its verbosity's length preference."""
        version = self.dna()
        if not version.number or plan.route is None:
            return plan
        by_name = {s.name: s for s in (*plan.stages, *full)}
        change = staged(version.dna, plan.complexity, tuple(s.name for s in plan.stages),
                        tuple(s.name for s in full))
        notes = tuple(f"Model DNA v{version.number}: {c}" for c in change.changes)
        return replace(plan, stages=tuple(by_name[n] for n in change.stages),
                       shaped=plan.shaped + notes, prefer=change.prefer)

    def _with_adapter(self, persona: ResolvedPersona, request: ChatRequest) -> ChatRequest:
        if request.loras or request.model.backend != "llamacpp":
            return request
        try:
            deployed = AdapterStore(self.settings.home, persona.id).deployed()
        except MiradorError as exc:
            log.warning("personal adapter of '%s' not used: %s", persona.id, exc)
            return request
        if deployed is None or deployed.meta.get("base_model") != request.model.id:
            return request
        return dataclasses.replace(request, loras=(LoraAdapter(path=str(deployed.adapter)),))


def apply_dna(version: Version, request: ChatRequest) -> ChatRequest:
    """The DNA's instruction after the system prompt, its request after the question, its
    length budget on max tokens and its stops beside the persona's."""
    shaped = shaping(version.dna)
    messages = _with_instruction(list(request.messages), shaped.instruction)
    if shaped.ask and messages and messages[-1].role == "user":
        last = messages[-1]
        messages[-1] = dataclasses.replace(last, content=f"{last.content}\n\n{shaped.ask}")
    update: dict[str, object] = {"max_tokens": shaped.tokens(request.options.max_tokens)}
    if shaped.stop and request.format is None:  # a stop would cut JSON short
        update["stop"] = [*(request.options.stop or []), *shaped.stop]
    options = request.options.model_copy(update=update)
    return dataclasses.replace(request, messages=tuple(messages), options=options)


def _with_instruction(messages: list[Message], instruction: str) -> list[Message]:
    if not instruction:
        return messages
    if messages and messages[0].role == "system":
        first = messages[0]
        messages[0] = dataclasses.replace(first, content=f"{first.content}\n{instruction}")
    else:
        messages.insert(0, Message("system", instruction))
    return messages
