"""The composition root: builds an orchestrator with everything the settings turn on.

The CLI and the server both start here, so a feature wired in once (memory,
learning) works the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from mirador import warmstart
from mirador.catalog.manifest import Manifest, ResolvedPersona, manifest_for
from mirador.errors import LearningStoreError, MiradorError
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings

if TYPE_CHECKING:
    from mirador.backends.llamacpp import LlamaCppBackend
    from mirador.embeddings import Embedder
    from mirador.learning import Learner

log = logging.getLogger("mirador")


def create_orchestrator(settings: Settings) -> Orchestrator:
    """An orchestrator over the manifest in the settings' home."""
    manifest = manifest_for(settings)
    embedder = shared_embedder(settings)  # one MiniLM for learning and memory, loading now
    orchestrator = Orchestrator(settings, manifest, embedder=embedder)  # the gate judges with it
    return _wire(orchestrator, create_learner(settings, manifest, embedder), embedder)


async def open_for_one_answer(settings: Settings, warm: bool = True,
                              model: str | None = None) -> Orchestrator:
    """`create_orchestrator` for a process that answers once (`mirador ask`), cold.

    Nothing sits in front of the first token that need not: with `warm`, the first
    configured stage's model (on `model`, when given) starts loading at once, while
    the learner opens in a thread; the embedder loads when first needed (the learner's
    classifier, once there are ratings to choose by; else the judge, at the first
    token); the memory store (chromadb) opens at the first recall, which starts at the
    first token.
    """
    manifest = manifest_for(settings)
    embedder = shared_embedder(settings, start=False)
    orchestrator = Orchestrator(settings, manifest, embedder=embedder)  # the gate judges with it
    # a model that cannot be named is not warmed here: the answer itself reports it
    with contextlib.suppress(MiradorError):
        if warm:
            persona = orchestrator.resolve(orchestrator.stages[0], model)
            warming = orchestrator.manager.warm(persona.model)
            if model is None:  # once it is loaded, the next `mirador ask` may start it at once
                warming.add_done_callback(lambda task: None if task.cancelled() or task.exception()
                                          else _leave_warm_start_hint(orchestrator, persona))
    learning = asyncio.ensure_future(asyncio.to_thread(create_learner, settings, manifest,
                                                       embedder))
    try:
        _plug(orchestrator, embedder)  # while the learner opens
    except BaseException:  # a manifest naming an unknown tool, say: close what opened
        learner = await learning
        if learner is not None:
            learner.close()
        raise
    return _learn(orchestrator, await learning, embedder, open_memory=False)


def _leave_warm_start_hint(orchestrator: Orchestrator, first: ResolvedPersona) -> None:
    """Tell the next `mirador ask` which llama.cpp load its first stage will want and how
    its prompt begins (`mirador.warmstart`), in a worker thread; for other backends, that
    it loads nothing in this process."""
    from mirador.backends.llamacpp import LlamaCppBackend

    backend = orchestrator.manager.backend(first.model.backend)

    def write() -> None:
        with contextlib.suppress(MiradorError, OSError):  # only the head start is lost
            if not isinstance(backend, LlamaCppBackend):
                warmstart.remember(orchestrator.settings.home, None)
                return
            warmstart.remember(orchestrator.settings.home, backend.load_key(first.model),
                               orchestrator.settings.config.server.port,
                               first_prompt_prefix(orchestrator, backend, first))

    asyncio.get_running_loop().run_in_executor(None, write)


def first_prompt_prefix(orchestrator: Orchestrator, backend: LlamaCppBackend,
                        first: ResolvedPersona) -> warmstart.Prefix | None:
    """How the first stage's prompt begins whatever the question (`warmstart.Prefix`);
    None when its model is not loaded here."""
    from mirador.orchestration.hooks import Query
    from mirador.orchestration.speculation import first_messages
    from mirador.orchestration.stages import Overrides

    question = "\u2063question\u2063"  # marked off, so no template text is mistaken for it
    messages = first_messages(Query(text=question), orchestrator.stages[0], first, Overrides())
    return backend.prompt_prefix(first.model, messages)


def _wire(orchestrator: Orchestrator, learner: Learner | None, embedder: Embedder | None,
          open_memory: bool = True) -> Orchestrator:
    """Plug tools, the energy profile, learning, predictive preload and memory into the
    orchestrator."""
    _plug(orchestrator, embedder)
    return _learn(orchestrator, learner, embedder, open_memory)


def _plug(orchestrator: Orchestrator, embedder: Embedder | None) -> None:
    """The energy profile's limits, tools and their routes (no learner needed)."""
    from mirador.orchestration.profiles import ProfileLimits
    from mirador.tools.docs import DocsIndex
    from mirador.tools.registry import available_tools, check_manifest
    from mirador.tools.routing import DocsRouter, ToolRouter

    orchestrator.limits = ProfileLimits(orchestrator.settings, manifest=orchestrator.manifest)
    orchestrator.tools = available_tools(orchestrator.settings)
    check_manifest(orchestrator.manifest, orchestrator.tools)
    orchestrator.routes.append(ToolRouter(orchestrator.manifest))  # arithmetic: calculate
    docs = DocsIndex(orchestrator.settings, embedder)  # questions on indexed documents
    orchestrator.routes.append(DocsRouter(orchestrator.manifest, docs))


def _learn(orchestrator: Orchestrator, learner: Learner | None, embedder: Embedder | None,
           open_memory: bool) -> Orchestrator:
    """Learning, personal shaping, predictive preload and memory."""
    if learner is not None:
        learner.limits = orchestrator.limits  # quality per watt in the chain choice
    if learner is not None:
        orchestrator.chooser = learner
        orchestrator.sinks.append(learner)
    from mirador.learning.personal import PersonalShaper  # Model DNA, personal adapters

    personal = PersonalShaper(orchestrator.settings, learner.store if learner else None)
    orchestrator.shapers.append(personal)  # each stage's request
    orchestrator.planner.shapers.append(personal)  # which routed stages run
    from mirador.orchestration.preload import attach

    attach(orchestrator)  # predictive preload, and the usage it learns from
    from mirador import memory

    # recall for the later stages; answers remembered
    memory.attach(orchestrator, embedder, start=open_memory)
    return orchestrator


def shared_embedder(settings: Settings, start: bool = True) -> Embedder | None:
    """The embedder, loading in the background (from now, or from its first use), when
    learning or memory needs one."""
    if not (settings.config.learning.enabled or settings.config.memory.enabled):
        return None
    from mirador.embeddings import load_embedder

    return load_embedder(settings, start=start)


def create_learner(settings: Settings, manifest: Manifest,
                   embedder: Embedder | None = None) -> Learner | None:
    """The learner that picks chains and logs answers; None when learning is off or broken.

    A ratings database that cannot be read turns learning off for this run (with a
    warning that says what to do) rather than costing the answer.
    """
    if not settings.config.learning.enabled:
        return None
    from mirador.learning import Learner

    try:
        return Learner.open(settings, manifest, embedder=embedder)
    except LearningStoreError as exc:
        log.warning("learning is off for this answer: %s", exc)
        return None
