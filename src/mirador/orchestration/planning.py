"""Which stages answer a query: the ones asked for, a chain's, or those its complexity
calls for; within what the energy profile allows.

Rules (`routes`, such as tool routing) are asked first, then the learner
(`chooser`); when neither claims the query the heuristic router's complexity picks
the configured stages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from mirador.backends import entry_for_reference
from mirador.catalog.manifest import AUTO_CHAIN, Manifest, ModelEntry, ResolvedPersona
from mirador.errors import ConfigError
from mirador.orchestration.events import StageAnswer
from mirador.orchestration.hooks import (
    ChainChoice,
    ChainChooser,
    Limits,
    Plan,
    PlanShaper,
    Query,
)
from mirador.orchestration.routing import Complexity, Route, classify
from mirador.orchestration.stages import ModelStage, select_stages
from mirador.settings import Settings

log = logging.getLogger("mirador")


class Planner:
    """Plans queries over the configured `stages` and the manifest's chains."""

    def __init__(self, settings: Settings, manifest: Manifest,
                 chooser: ChainChooser | None = None) -> None:
        self.settings = settings
        self.manifest = manifest
        self.stages = [ModelStage.from_config(s) for s in settings.config.stages]
        self.chooser = chooser
        self.routes: list[ChainChooser] = []  # rules asked before the chooser (tool routing)
        self.shapers: list[PlanShaper] = []  # adjust routed plans (Model DNA)

    @property
    def thinks(self) -> bool:
        """Whether planning asks a route or the chooser (which may take a while)."""
        return self.chooser is not None or bool(self.routes)

    def plan(self, query: str | Query, stages: Sequence[str | ModelStage] | None = None,
             chain: str | None = None) -> Plan:
        """Which stages run: the given ones, a chain's, or those the complexity calls for."""
        q = query if isinstance(query, Query) else Query(text=query)
        if chain:
            return Plan("chain", tuple(self.chain_stages(chain)), chain=chain)
        if stages:
            chosen = [s for s in stages if isinstance(s, ModelStage)]
            names = [s for s in stages if isinstance(s, str)]
            if names and chosen:
                raise ConfigError("give stages either all as names or all as ModelStage")
            picked = chosen or select_stages(self.stages, names)
            return Plan(complexity="custom", stages=tuple(picked))
        choice = self._routed(q)
        plan = self._by_complexity(q, chain=None) if choice is None else self.chosen(q, choice)
        return self.shaped(plan)

    def shaped(self, plan: Plan) -> Plan:
        """`plan` as the plan shapers leave it (they see the configured stages a complex
        query runs: a routing name with no configured stage is not theirs to add)."""
        if not self.shapers:
            return plan
        by_name = {s.name: s for s in self.stages}
        full = tuple(by_name[n] for n in self.settings.config.routing.stages_for("complex")
                     if n in by_name)
        for shaper in self.shapers:
            plan = shaper.shape_plan(plan, full)
        return plan

    def chosen(self, query: Query, choice: ChainChoice) -> Plan:
        """The plan for a route's or the chooser's `choice`."""
        if choice.chain != AUTO_CHAIN:
            return Plan("chain", tuple(self.chain_stages(choice.chain)), chain=choice.chain,
                        choice=choice)
        return self._by_complexity(query, chain=AUTO_CHAIN, choice=choice)

    def _by_complexity(self, query: Query, chain: str | None,
                       choice: ChainChoice | None = None) -> Plan:
        route = classify(query.text)
        return self.for_complexity(route.complexity, route, chain, choice)

    def for_complexity(self, complexity: Complexity, route: Route | None = None,
                       chain: str | None = None, choice: ChainChoice | None = None) -> Plan:
        """The configured stages the routing runs for `complexity`."""
        names = self.settings.config.routing.stages_for(complexity)
        return Plan(complexity, tuple(select_stages(self.stages, names)), route,
                    chain=chain, choice=choice)

    def _routed(self, query: Query) -> ChainChoice | None:
        """The first rule in `routes` that claims the query, else the chooser's pick."""
        for rule in self.routes:
            choice = rule.choose(query)
            if choice is not None:
                return choice
        return self.chooser.choose(query) if self.chooser else None

    def allowed(self, plan: Plan, query: Query, limits: Limits | None, chosen: bool) -> Plan:
        """The plan the energy profile allows. A chain the learner or routing picked that
        the profile does not allow gives way to the profile's first allowed chain (the
        person's own choice stands); with deeper stages off, only the first stage runs."""
        if limits is None or chosen:
            return plan
        picked = plan.chain or AUTO_CHAIN
        if limits.chains is not None and not limits.allows(picked):
            fallback = limits.chains[0]
            log.info("profile %s does not allow chain %s; %s answers", limits.profile,
                     picked, fallback)
            plan = (Plan("chain", tuple(self.chain_stages(fallback)), chain=fallback)
                    if fallback != AUTO_CHAIN else self._by_complexity(query, AUTO_CHAIN))
        if limits.deeper_stages or len(plan.stages) <= 1:
            return plan
        return replace(plan, stages=plan.stages[:1])

    def chain_stages(self, chain_id: str) -> list[ModelStage]:
        """A chain's steps as stages, confidence rising from the first stage's to the last's."""
        steps = self.manifest.chain(chain_id).steps
        first, last = self.stages[0], self.stages[-1]
        span = len(steps) - 1 or 1
        return [ModelStage(name=step, persona=step,
                           confidence=round(first.confidence
                                            + (last.confidence - first.confidence) * i / span, 3),
                           timeout=(first if i == 0 else last).timeout,
                           first_token_timeout=(first if i == 0 else last).first_token_timeout)
                for i, step in enumerate(steps)]

    def resolve(self, stage: ModelStage, force_model: str | None = None) -> ResolvedPersona:
        """The persona `stage` runs, on `force_model` when the caller named one."""
        persona = self.manifest.resolve(stage.persona)
        if force_model:
            persona = persona.model_copy(update={"model": self.model_entry(force_model)})
        return persona

    def model_entry(self, ref: str) -> ModelEntry:
        """A manifest model id, or a backend's own reference (`ollama:TAG`, a .gguf path)."""
        return entry_for_reference(ref) or self.manifest.model(ref)


def tokens_left(limit: int | None, answers: dict[str, StageAnswer],
                limits: Limits | None) -> int | None:
    """The tokens the next stage may generate: what the caller's `limit` leaves after
    the stages so far, and the profile's cap (None: no limit)."""
    left = None if limit is None else max(0, limit - sum(a.tokens for a in answers.values()))
    cap = limits.max_tokens if limits is not None else None
    if cap is None or left is None:
        return left if cap is None else cap
    return min(left, cap)
