"""The learner: picks each query's chain, logs every answer, and learns from ratings.

It is the orchestrator's `ChainChooser` and one of its `AnswerSink`s:

    learner = Learner.open(settings, manifest)
    orchestrator = Orchestrator(settings, manifest, chooser=learner, sinks=[learner])
    ...
    learner.rate(None, 5, note="just right")   # the last answer

`choose` classifies the query (one embedding and a nearest-neighbour vote),
looks up the manifest's candidate chains for its type and lets the bandit pick.
The classifier is built in a background thread (embedding the seeds the first
time), so creating a learner never blocks start-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from mirador.background import Background
from mirador.catalog.manifest import AUTO_CHAIN, Manifest
from mirador.errors import LearningError, MiradorError, RatingError
from mirador.learning import energy
from mirador.learning.bandit import (
    BanditConfig,
    Decision,
    DiscountedThompson,
    capability_priors,
)
from mirador.learning.dna import describe, in_force_at, learned
from mirador.learning.explain import describe_decision, explanation
from mirador.learning.querytypes import QueryClassifier, QueryType, load_seeds, seed_examples
from mirador.learning.store import AnswerLog, LearningStore, Rating, StageTiming, check_rating
from mirador.orchestration.hooks import (
    AnswerRecord,
    ChainChoice,
    Limits,
    LimitsSource,
    Query,
    Ranked,
)

if TYPE_CHECKING:
    from mirador.embeddings import Embedder
    from mirador.settings import Settings

log = logging.getLogger("mirador.learning")

RatingHook = Callable[[str, int], None]
_MEMO_SIZE = 64


@dataclass(frozen=True)
class Candidates:
    """The chains that may answer a query type, their priors, and where the list came from."""

    chains: tuple[str, ...]
    priors: dict[str, float]
    source: str  # the manifest's `candidates` key used, or 'capabilities'


def _allowed(candidates: Candidates, limits: Limits | None) -> Candidates:
    """Only the candidates the energy profile allows (`Limits.chains`)."""
    if limits is None or limits.chains is None:
        return candidates
    chains = tuple(c for c in candidates.chains if limits.allows(c))
    return replace(candidates, chains=chains,
                   priors={c: p for c, p in candidates.priors.items() if c in chains})


@dataclass(frozen=True)
class _Choice:
    query_type: QueryType
    vector: np.ndarray
    decision: Decision | None
    candidates: Candidates | None


_CLASSIFY_LATER = _Choice(QueryType("", "", 0.0), np.zeros(0), None, None)  # memo: cold 'auto'
UNCLASSIFIED = "unclassified"  # a cold start's query type: found when the answer is logged
COLD_AUTO = ("cold start: no ratings yet, so the configured stages answer (the chain "
             "bench/quality.py measures); rate answers to teach Mirador which chain serves "
             "which kind of query")


class Learner:
    """Chooses chains (ChainChooser), logs answers (AnswerSink) and takes ratings."""

    def __init__(self, store: LearningStore, manifest: Manifest,
                 classifier: Callable[[], QueryClassifier] | None = None,
                 config: BanditConfig | None = None, model_key: str = "minilm",
                 history_min_rating: int = 4, wait: float = 10.0,
                 seed: int | None = None, keep_text: bool = True) -> None:
        self.store = store
        self.keep_text = keep_text  # False (memory off): no query text, embedding or note
        self.manifest = manifest
        self.bandit = DiscountedThompson(config or BanditConfig(), seed=seed)
        self.model_key = model_key
        self.history_min_rating = history_min_rating
        self.wait = wait
        self.rating_hooks: list[RatingHook] = []
        self.limits: LimitsSource | None = None  # the energy profile: quality per watt
        self._lock = threading.RLock()
        self._memo: OrderedDict[str, _Choice] = OrderedDict()
        self._version = -1
        self.refresh()
        # Built at once when there are ratings to choose by; with none, every choice is a
        # cold start that needs no query type, so it is built when first needed (when the
        # first answer is logged) rather than beside the first model's load.
        self._classifier: Background[QueryClassifier | None] = (
            Background.of(None, "mirador-query-types") if classifier is None  # rating only
            else Background(partial(self._build, classifier), "mirador-query-types",
                            start=self.bandit.has_evidence))

    @classmethod
    def open(cls, settings: Settings, manifest: Manifest, embedder: Embedder | None = None,
             seed: int | None = None) -> Learner:
        """A learner over the ratings database in the home, with the configured embedder."""
        from mirador.embeddings import load_embedder

        config = settings.config.learning
        chosen = embedder or load_embedder(settings)
        model_key = _model_key(settings)
        cache = settings.home / "cache"

        def build() -> QueryClassifier:
            seeds = seed_examples(load_seeds(), chosen, cache, model_key)
            return QueryClassifier(chosen, seeds, neighbours=config.neighbours)

        store = LearningStore.in_home(settings.home)
        bandit = BanditConfig(fade=config.fade, share=config.share)
        return cls(store, manifest, build, bandit, model_key=model_key,
                   history_min_rating=config.history_min_rating, seed=seed,
                   keep_text=settings.config.memory.enabled)

    @classmethod
    def for_ratings(cls, settings: Settings, manifest: Manifest | None = None) -> Learner:
        """A learner that rates and explains without loading the embedding model."""
        from mirador.catalog.manifest import manifest_for

        manifest = manifest or manifest_for(settings)
        config = settings.config.learning
        bandit = BanditConfig(fade=config.fade, share=config.share)
        return cls(LearningStore.in_home(settings.home), manifest, None, bandit,
                   model_key=_model_key(settings),
                   history_min_rating=config.history_min_rating,
                   keep_text=settings.config.memory.enabled)

    def close(self) -> None:
        """Close the ratings database."""
        self.store.close()

    async def aclose(self) -> None:
        """Close the ratings database (the orchestrator closes its hooks this way); off the
        event loop, since a worker thread may hold the database for a moment."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Learner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the classifier, built in the background -----------------------------------

    def _build(self, factory: Callable[[], QueryClassifier]) -> QueryClassifier | None:
        classifier = factory()
        classifier.set_history(self.store.rated_examples(self.history_min_rating,
                                                         self.model_key))
        return classifier

    def classifier(self, timeout: float | None = None) -> QueryClassifier | None:
        """The classifier, waiting up to `timeout` seconds (None: as long as it takes);
        None if it is not ready by then (or this learner has none); what building it
        raised if that failed."""
        try:
            return self._classifier.result(timeout)
        except TimeoutError:
            return None

    def classify(self, text: str) -> QueryType:
        """The query type of `text` (waits for the classifier)."""
        return self._needed_classifier().classify(text)

    def _needed_classifier(self) -> QueryClassifier:
        classifier = self.classifier()
        if classifier is None:
            raise LearningError("this learner was opened without a query classifier; "
                                "use Learner.open(settings, manifest) to classify queries")
        return classifier

    # -- choosing ------------------------------------------------------------------

    def choose(self, query: Query) -> ChainChoice | None:
        """The chain for `query`: its type's candidates, picked by the bandit.

        None (the default routing) when the classifier is not ready or learning fails:
        a learning problem never costs an answer.
        """
        try:
            return self._choose(query)
        except MiradorError as exc:
            log.warning("learning could not choose a chain, so the default routing answers: "
                        "%s", exc)
            return None

    def _choose(self, query: Query) -> ChainChoice | None:
        limits = self.limits.limits() if self.limits is not None else None
        if self._auto_whatever_the_type(limits):
            self._remember(query.text, _CLASSIFY_LATER)
            return ChainChoice(AUTO_CHAIN, UNCLASSIFIED, COLD_AUTO)
        classifier = self.classifier(self.wait)
        if classifier is None:
            log.warning("the query-type classifier is still loading; this answer uses the "
                        "default routing and is logged once it is ready")
            return None
        vector = classifier.embed(query.text)
        query_type = classifier.classify(query.text, vector)
        candidates = _allowed(self.candidates(query_type.name), limits)
        if not candidates.chains:  # the profile allows none of them: its own fallback runs
            return None
        decision = self.decide(query_type.name, candidates)
        if limits is not None and limits.weighs_energy:  # the profile's quality per watt
            decision = energy.weigh(decision, limits,
                                    self.store.mean_joules(c.chain for c in decision.arms))
        self._remember(query.text, _Choice(query_type, vector, decision, candidates))
        return ChainChoice(decision.chain, query_type.name, describe_decision(decision),
                           tuple(Ranked(c, s) for c, s in decision.ranked()))

    def _auto_whatever_the_type(self, limits: Limits | None) -> bool:
        """True while no rating of any type is believed and every candidate list holds
        'auto', whose prior leads: then the pick is 'auto' whatever the query's type, so the
        first stage need not wait for the classifier (the type is found when the answer is
        logged). An energy profile (`limits`) that weighs joules or rules 'auto' out needs
        the type."""
        if limits is not None and (limits.weighs_energy or not limits.allows(AUTO_CHAIN)):
            return False
        if any(AUTO_CHAIN not in chains for chains in self.manifest.candidates.values()):
            return False
        self.refresh()
        with self._lock:
            return not self.bandit.has_evidence

    def decide(self, query_type: str, candidates: Candidates | None = None) -> Decision:
        """The bandit's pick among the type's candidates (no text needed: the simulation)."""
        candidates = candidates or self.candidates(query_type)
        self.refresh()
        with self._lock:
            return self.bandit.choose(query_type, candidates.priors)

    def candidates(self, query_type: str) -> Candidates:
        """The manifest's candidates for the type, else for its domain, else by capability."""
        domain, _, complexity = query_type.partition("/")
        meant_for = {query_type, domain, complexity}  # a capability may name any of these
        for key in (query_type, domain, "default"):
            if key in self.manifest.candidates:
                chains, source = tuple(self.manifest.candidates[key]), key
                break
        else:
            chains = (*(c.id for c in self.manifest.chains if meant_for & set(c.capabilities)),
                      AUTO_CHAIN)
            source = "capabilities"
        capable = [c for c in chains if c != AUTO_CHAIN
                   and meant_for & set(self.manifest.chain(c).capabilities)]
        return Candidates(chains, capability_priors(chains, capable, AUTO_CHAIN), source)

    def _remember(self, text: str, choice: _Choice) -> None:
        with self._lock:
            self._memo[text] = choice
            self._memo.move_to_end(text)
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)

    # -- logging answers -------------------------------------------------------------

    async def answer_finished(self, record: AnswerRecord) -> None:
        """Log the answer in a worker thread, so the event loop never waits on the disk."""
        try:
            await asyncio.to_thread(self.log_answer, record)
        except MiradorError as exc:  # the answer is given; say why it was not kept
            log.warning("answer %s was not logged for learning: %s", record.done.answer_id, exc)

    def log_answer(self, record: AnswerRecord) -> AnswerLog:
        """Keep one finished answer: its query type, chain, timings and outcome."""
        choice = self._choice_for(record)
        kept = snapshot(choice)
        if record.plan.shaped:  # what Model DNA did to the plan, for `mirador why`
            kept["plan_shaped"] = list(record.plan.shaped)
        logged = answer_log(record, choice.query_type, choice.vector, self.model_key, kept)
        if not self.keep_text:
            logged = replace(logged, query="", embedding=None, embedding_model=None)
        self.store.record_answer(logged)
        return self.store.answer(record.done.answer_id)

    def _choice_for(self, record: AnswerRecord) -> _Choice:
        with self._lock:
            memo = self._memo.pop(record.query.text, None)
        if memo is not None and memo is not _CLASSIFY_LATER and record.plan.choice is not None:
            return memo
        classifier = self._needed_classifier()
        vector = classifier.embed(record.query.text)
        query_type = classifier.classify(record.query.text, vector)
        if memo is _CLASSIFY_LATER and record.plan.choice is not None:  # a cold-start 'auto'
            candidates = self.candidates(query_type.name)
            return _Choice(query_type, vector, self.decide(query_type.name, candidates),
                           candidates)
        return _Choice(query_type, vector, None, None)

    # -- ratings ----------------------------------------------------------------------

    def rate(self, answer_id: str | None, rating: int, note: str | None = None) -> Rating:
        """Rate an answer 1-5 (the last one when `answer_id` is None) and learn from it."""
        check_rating(rating)
        if note and not self.keep_text:
            raise RatingError("memory is turned off (memory.enabled: false or --no-memory), "
                              "so Mirador keeps no text: rate without --note")
        stored = self.store.add_rating(answer_id, rating, note)
        if note:
            self._learn_dna(note)
        if len(self.store.ratings_of(stored.answer_id)) > 1:
            self.refresh(force=True)  # a changed rating rewrites history: replay it all
        elif stored.chain is not None:
            with self._lock:
                self.bandit.update(stored.query_type, stored.chain, rating)
        self._teach_classifier()
        for hook in self.rating_hooks:
            hook(stored.answer_id, rating)
        return stored

    def _learn_dna(self, note: str) -> None:
        """A note like "too long" or "more detail" moves Model DNA one step."""
        nudged = learned(self.store.dna().dna, note)
        if nudged is not None:
            self.store.save_dna(nudged, "learned", note)

    def _teach_classifier(self) -> None:
        classifier = self.classifier(0)
        if classifier is not None:
            classifier.set_history(self.store.rated_examples(self.history_min_rating,
                                                             self.model_key))

    # -- explaining ---------------------------------------------------------------------

    def explain(self, answer_id: str | None) -> dict[str, Any]:
        """Why an answer (the last one by default) used its chain, and what is believed now."""
        answer = self.store.answer(answer_id)
        now = self.decide(answer.query_type)
        if not now.cold_start:
            now = replace(now, chain=now.best_mean.chain, draws=())
        data = explanation(answer, self.store.ratings_of(answer.answer_id), now)
        data["dna"] = describe(in_force_at(self.store.dna_history(), answer.created_at))
        return data

    def refresh(self, force: bool = False) -> None:
        """Replay the ratings when another process (or a re-rating) changed them."""
        version = self.store.data_version()
        if version == self._version and not force:
            return
        ratings = self.store.latest_ratings()
        with self._lock:
            self.bandit.reset()
            for rating in ratings:
                if rating.chain is not None:
                    self.bandit.update(rating.query_type, rating.chain, rating.rating)
            self._version = version


def _model_key(settings: Settings) -> str:
    memory = settings.config.memory
    return f"{memory.embedder}:{memory.embedder_model or 'default'}"


def answer_log(record: AnswerRecord, query_type: QueryType, vector: np.ndarray | None,
               model_key: str, choice: dict[str, Any] | None) -> AnswerLog:
    """What the store keeps of a finished answer."""
    done = record.done
    stages = tuple(StageTiming(e.stage, e.model, e.status, e.seconds, e.ttft, e.tokens,
                               e.tokens_per_second) for e in record.stage_ends)
    return AnswerLog(
        answer_id=done.answer_id, query=record.query.text, domain=query_type.domain,
        complexity=query_type.complexity, query_type=query_type.name, chain=_chain(record),
        status=done.status, chosen_by="learner" if record.plan.choice else _caller(record),
        session_id=record.query.session_id, namespace=record.query.namespace,
        seconds=done.seconds, ttft=done.ttft, tokens=done.tokens, stages=stages, choice=choice,
        embedding=vector, embedding_model=model_key if vector is not None else None,
        profile=done.profile, energy_j=done.energy_j, energy_method=done.energy_method)


def _chain(record: AnswerRecord) -> str | None:
    """The chain that answered: routed stages are the 'auto' chain; named stages are none."""
    plan = record.plan
    return plan.chain or (AUTO_CHAIN if plan.route is not None else None)


def _caller(record: AnswerRecord) -> str:
    plan = record.plan
    if plan.chain:
        return "caller"  # --chain NAME
    return "stages" if plan.complexity == "custom" else "routing"


def snapshot(choice: _Choice) -> dict[str, Any]:
    """What `mirador why` needs later: the type, its neighbours and the bandit's decision."""
    qt = choice.query_type
    data: dict[str, Any] = {
        "domain": qt.domain, "complexity": qt.complexity, "confidence": qt.confidence,
        "neighbours": [[n.domain, n.similarity, n.text] for n in qt.neighbours[:5]],
        "complexity_reasons": list(qt.complexity_reasons)}
    if choice.decision is not None and choice.candidates is not None:
        data["decision"] = choice.decision.to_dict()
        data["candidates_from"] = choice.candidates.source
    return data

