"""Predictive preload: load the models a query will need while it is still being typed.

A prediction comes from three sources, merged per base model:

- triggers: words or phrases of personas and models in the manifest that the
  (partial) query contains; the word being typed counts when it starts one;
- the routing decision: the stages the orchestrator would plan for the text
  (the complexity routing, or a learned chain choice);
- history: the personas used for similar past queries (`usage.json`).

The best guesses start loading in the background through the manager, which
never lets a guess evict a pinned, busy or just-requested model nor wait for
one. When the answer is finished, what it really used is recorded, and so is
how the guess compared (the hit rate).

    preloader = attach(orchestrator)   # done by create_orchestrator
    preloader.typing("How should I invest my sav")   # debounced; call on the event loop
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mirador.catalog.manifest import Manifest, ModelEntry
from mirador.errors import MiradorError
from mirador.models.manager import ModelManager
from mirador.models.usage import UsageLog

if TYPE_CHECKING:
    from mirador.orchestration.hooks import AnswerRecord
    from mirador.orchestration.orchestrator import Orchestrator

Plan = Callable[[str], Sequence[str]]
"""Persona (or model) ids the orchestrator would run for a text, first stage first."""

TRIGGER, PARTIAL_TRIGGER, FIRST_STAGE, LATER_STAGE = 1.0, 0.6, 0.9, 0.5
SUPPORT = 0.05  # what each further reason for the same model adds
MIN_PREFIX = 4  # letters of a word being typed before it may match a trigger


@dataclass(frozen=True)
class Prediction:
    model: ModelEntry
    score: float
    personas: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass
class _Tally:
    model: ModelEntry
    score: float = 0.0
    personas: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, score: float, persona: str, reason: str) -> None:
        """The best single reason counts; each further reason adds a little (ties break)."""
        self.score = max(self.score, score) + (SUPPORT if self.reasons else 0.0)
        if persona not in self.personas:
            self.personas.append(persona)
        if reason not in self.reasons:
            self.reasons.append(reason)


class Predictor:
    """Which base models a (partial) query will need, best guess first."""

    def __init__(self, manifest: Manifest, plan: Plan | None = None,
                 usage: UsageLog | None = None) -> None:
        self.manifest = manifest
        self.plan = plan
        self.usage = usage
        self._triggers = _compile_triggers(manifest)

    def predict(self, text: str) -> list[Prediction]:
        tallies: dict[str, _Tally] = {}
        for ref, score, reason in [*self._by_trigger(text), *self._by_plan(text),
                                   *self._by_history(text)]:
            try:
                model = self.manifest.resolve(ref).model
            except MiradorError:
                continue  # a stale id in the history: skip it
            tallies.setdefault(model.id, _Tally(model)).add(score, ref, reason)
        ranked = sorted(tallies.values(), key=lambda t: -t.score)
        return [Prediction(t.model, round(t.score, 3), tuple(t.personas), tuple(t.reasons))
                for t in ranked]

    def _by_trigger(self, text: str) -> list[tuple[str, float, str]]:
        found = []
        typing = _word_being_typed(text)
        for ref, trigger, pattern in self._triggers:
            if pattern.search(text):
                found.append((ref, TRIGGER, f"trigger '{trigger}'"))
            elif typing and trigger.lower().startswith(typing):
                found.append((ref, PARTIAL_TRIGGER, f"trigger '{trigger}' (typing)"))
        return found

    def _by_plan(self, text: str) -> list[tuple[str, float, str]]:
        if self.plan is None:
            return []
        try:
            refs = list(self.plan(text))
        except MiradorError:
            return []
        return [(ref, FIRST_STAGE if i == 0 else LATER_STAGE, "routing")
                for i, ref in enumerate(refs)]

    def _by_history(self, text: str) -> list[tuple[str, float, str]]:
        if self.usage is None:
            return []
        return [(persona, similarity, "similar past query")
                for similarity, past in self.usage.similar(text) for persona in past.personas]


def _compile_triggers(manifest: Manifest) -> list[tuple[str, str, re.Pattern[str]]]:
    entries = [(p.id, t) for p in manifest.personas for t in p.triggers]
    entries += [(m.id, t) for m in manifest.models for t in m.triggers]
    return [(ref, t, re.compile(rf"(?<!\w){re.escape(t)}(?!\w)", re.IGNORECASE))
            for ref, t in entries if t.strip()]


def _word_being_typed(text: str) -> str | None:
    """The last word when the text does not end in a space and it is long enough."""
    if not text or not text[-1].isalnum():
        return None
    word = re.split(r"\W+", text.lower())[-1]
    return word if len(word) >= MIN_PREFIX else None


class Preloader:
    """Turns predictions into background loads and keeps score of them."""

    def __init__(self, manager: ModelManager, predictor: Predictor, usage: UsageLog | None,
                 debounce: float = 0.35, max_models: int = 2,
                 allowed: Callable[[], bool] = lambda: True) -> None:
        self.manager = manager
        self.allowed = allowed  # False while the energy profile turns preload off
        self.predictor = predictor
        self.usage = usage
        self.debounce = debounce
        self.max_models = max_models
        self.predicted: set[str] = set()  # models predicted since the last answer
        self._timer: asyncio.TimerHandle | None = None
        self._pending = ""
        self._last = ""
        self._tasks: set[asyncio.Task[list[Prediction]]] = set()

    def typing(self, partial: str) -> None:
        """The text typed so far; predicts once typing pauses for `debounce` seconds.
        Call it on the event loop (from another thread: loop.call_soon_threadsafe)."""
        if self._timer is not None:
            self._timer.cancel()
        self._pending = partial
        self._timer = asyncio.get_running_loop().call_later(self.debounce, self._fire, partial)

    def _fire(self, text: str) -> None:
        self._timer = None
        text = text.strip()
        if not text or text == self._last:
            return
        self._last = text
        task = asyncio.ensure_future(self.preload_for(text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def preload_for(self, text: str) -> list[Prediction]:
        """Predict for `text` and start loading the best guesses now (none while the
        energy profile turns preload off)."""
        if not self.allowed():
            return []
        predictions = self.predictor.predict(text)[: self.max_models]
        for prediction in predictions:
            self.predicted.add(prediction.model.id)
            self.manager.preload(prediction.model)
        return predictions

    async def settle(self) -> None:
        """Predict now for text still waiting out the debounce, then wait for the loads
        predictions started (tests and benchmarks use this)."""
        if self._timer is not None:
            self._timer.cancel()
            self._fire(self._pending)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.manager.settled()

    async def answer_finished(self, record: AnswerRecord) -> None:
        """Answer sink: remember what the query used, and score the guesses made for it."""
        personas = [stage.persona for stage in record.plan.stages]
        models = [answer.model for answer in record.done.answers.values() if answer.model]
        predicted, self.predicted, self._last = set(self.predicted), set(), ""
        if self.usage is not None:
            await asyncio.to_thread(self._remember, record.query.text, personas, models,
                                    predicted)

    def _remember(self, text: str, personas: list[str], models: list[str],
                  predicted: set[str]) -> None:
        assert self.usage is not None
        if predicted:
            self.usage.score(predicted, set(models))
        self.usage.record(text, personas, models)


def attach(orchestrator: Orchestrator) -> Preloader | None:
    """Give the orchestrator a preloader (unless `models.preload` is off) that
    learns from every finished answer."""
    settings = orchestrator.settings
    if not settings.config.models.preload:
        return None
    usage = UsageLog(settings.models_dir / "usage.json", settings.config.memory.enabled)

    def plan(text: str) -> list[str]:
        return [stage.persona for stage in orchestrator.plan(text).stages]

    predictor = Predictor(orchestrator.manifest, plan, usage)
    preloader = Preloader(orchestrator.manager, predictor, usage,
                          debounce=settings.config.models.preload_debounce,
                          allowed=lambda: _preload_allowed(orchestrator))
    orchestrator.preloader = preloader
    orchestrator.sinks.append(preloader)
    return preloader


def _preload_allowed(orchestrator: Orchestrator) -> bool:
    limits = orchestrator.limits
    return limits is None or limits.limits().preload
