"""What Ollama and OpenAI clients see: Mirador's chains as models, a staged answer as text.

Model names:

    mirador:auto (or mirador, mirador:latest)  the configured stages, routed by complexity
    mirador:quick                              the first configured stage alone
    mirador:<chain id>                         a chain from the manifest, step by step
    mirador:task                               a chat front end's background tasks
                                               (titles, tags): one quick stage (tasks.py)
    <model id> (or <model id>:latest)          one stage on that manifest model, with the
                                               client's system prompt and temperature

A staged answer becomes one stream of text. With `server.compat_stages: all` (the
default) every stage streams in turn under a header line (`── synthesis · synthesizer
· confidence 0.95 ──`) so a plain chat client shows the answer deepening; a failed
stage adds a `[timeout] ...` line. With `final`, only the last planned stage streams
(or, if it failed, the best answer there is). A single-model answer has no headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mirador.backends import Message
from mirador.errors import ContextOverflowError, ModelFileError, ModelNotFoundError
from mirador.models.manifest import ModelEntry
from mirador.models.slots import SizesContext
from mirador.orchestration.events import Ack, Done, ErrorEvent, Event, StageEnd, StageStart, Token
from mirador.orchestration.orchestrator import Orchestrator, Query
from mirador.orchestration.stages import ModelStage
from mirador.server.errors import BadRequestError
from mirador.server.options import Sampling
from mirador.server.runtime import AnswerRequest

PREFIX = "mirador"
AUTO, QUICK, TASK = "auto", "quick", "task"
Kind = Literal["auto", "quick", "chain", "model", "task"]
# A client that names one model expects a plain model: no stage deadline cutting a long
# answer short, only a generous bound on a runaway one.
SINGLE_MODEL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Target:
    """What a client's model name runs."""

    name: str
    kind: Kind
    ref: str = ""  # the chain or model id


@dataclass(frozen=True)
class ModelCard:
    """One entry of /api/tags and /v1/models."""

    name: str
    kind: Kind
    description: str
    steps: tuple[str, ...]
    base_models: tuple[ModelEntry, ...]
    size: int = 0
    digest: str = ""
    modified: float = 0.0


def targets(orchestrator: Orchestrator) -> list[Target]:
    """Every model name this server answers to, chains first."""
    chains = [Target(f"{PREFIX}:{c.id}", "chain", c.id) for c in orchestrator.manifest.chains]
    models = [Target(m.id, "model", m.id) for m in orchestrator.manifest.models]
    return [Target(f"{PREFIX}:{AUTO}", "auto"), Target(f"{PREFIX}:{QUICK}", "quick"),
            *chains, Target(f"{PREFIX}:{TASK}", "task"), *models]


def resolve_target(orchestrator: Orchestrator, name: str) -> Target:
    """The target a model name means; ModelNotFoundError naming the choices otherwise."""
    wanted = _normalise(name)
    for target in targets(orchestrator):
        if wanted == target.name:
            return target
    known = ", ".join(t.name for t in targets(orchestrator))
    raise ModelNotFoundError(f"model '{name}' not found (this server has: {known}); "
                             "pick one of those names")


def _normalise(name: str) -> str:
    name = name.strip()
    if name in (PREFIX, f"{PREFIX}:latest"):
        return f"{PREFIX}:{AUTO}"
    return name.removesuffix(":latest")


def build_request(orchestrator: Orchestrator, target: Target, query: Query,
                  system: str | None = None, sampling: Sampling | None = None) -> AnswerRequest:
    """The answer a target runs. A client's system prompt and sampling reach single models."""
    if target.kind != "model":
        return _STAGED[target.kind](orchestrator, target, query)
    sampling = sampling or Sampling()
    last = orchestrator.stages[-1]
    stage = ModelStage(name=target.ref, model=target.ref, confidence=1.0,
                       timeout=max(last.timeout, SINGLE_MODEL_TIMEOUT),
                       first_token_timeout=last.first_token_timeout, system_prompt=system,
                       temperature=sampling.temperature, max_tokens=sampling.max_tokens)
    return AnswerRequest(query=query, stages=[stage])


async def check_fits(orchestrator: Orchestrator, models: Sequence[ModelEntry], query: Query,
                     system: str | None = None) -> None:
    """ContextOverflowError (a 400) when the client's text alone overflows a model's window.

    Counting runs in a worker thread, and only for text at least as many bytes as the
    window has tokens: a token covers at least one byte, so shorter text always fits."""
    text = "\n".join([system or "", *(m.content for m in query.history), query.text])
    size = len(text.encode("utf-8"))
    for entry in {m.id: m for m in models}.values():
        window = context_window(orchestrator, entry)
        if size < window:
            continue
        tokens = await orchestrator.manager.count_tokens(entry, text)
        if tokens >= window:
            raise ContextOverflowError(
                f"the prompt is {tokens} tokens but model '{entry.id}' has a context window "
                f"of {window} tokens; send a shorter prompt or fewer earlier messages")


def context_window(orchestrator: Orchestrator, entry: ModelEntry) -> int:
    """The window `entry` runs with: its backend's setting where it has one."""
    backend = orchestrator.manager.backend(entry.backend)
    if isinstance(backend, SizesContext):
        return backend.context_size(entry)
    return entry.context_length


def target_models(orchestrator: Orchestrator, target: Target) -> list[ModelEntry]:
    """The base models a target's steps run on."""
    steps, _ = _steps(orchestrator, target)
    return [orchestrator.manifest.resolve(step).model for step in steps]


# Staged targets run with their personas' own prompts and options.
_STAGED: dict[str, Callable[[Orchestrator, Target, Query], AnswerRequest]] = {
    "auto": lambda orchestrator, target, query: AnswerRequest(query=query),
    "quick": lambda orchestrator, target, query: AnswerRequest(
        query=query, stages=[orchestrator.stages[0].name]),
    "chain": lambda orchestrator, target, query: AnswerRequest(query=query, chain=target.ref),
    "task": lambda orchestrator, target, query: AnswerRequest(
        query=query, stages=[orchestrator.stages[0].name], remember=False),
}


def chat_query(messages: Sequence[tuple[str, str]]) -> tuple[Query, str | None]:
    """A chat (role, content) list as a Query (the last user turn, earlier turns as history)
    and the client's system prompt."""
    system = "\n\n".join(c for r, c in messages if r == "system" and c) or None
    turns = [Message(r, c) for r, c in messages if r in ("user", "assistant")]  # type: ignore[arg-type]
    if not turns or turns[-1].role != "user" or not turns[-1].content.strip():
        raise BadRequestError("the last message must be the user's, with some text; send "
                              'messages ending with {"role": "user", "content": "..."}')
    return Query(text=turns[-1].content.strip(), history=tuple(turns[:-1])), system


# -- listing -------------------------------------------------------------------------


def cards(orchestrator: Orchestrator, models_dir: Path) -> list[ModelCard]:
    """Every target as a card: what it runs, on which base models, how big they are."""
    return [_card(orchestrator, t, models_dir) for t in targets(orchestrator)]


def cards_for(orchestrator: Orchestrator, target: Target, models_dir: Path) -> ModelCard:
    """One target's card."""
    return _card(orchestrator, target, models_dir)


def _card(orchestrator: Orchestrator, target: Target, models_dir: Path) -> ModelCard:
    manifest = orchestrator.manifest
    steps, description = _steps(orchestrator, target)
    bases: dict[str, ModelEntry] = {}
    for step in steps:
        entry = manifest.resolve(step).model
        bases.setdefault(entry.id, entry)
    sizes = [model_size(e, models_dir) for e in bases.values()]
    paths = [p for e in bases.values() if (p := _model_file(e, models_dir))]
    modified = max((p.stat().st_mtime for p in paths), default=0.0)
    digest = hashlib.sha256(f"{target.name}:{':'.join(steps)}".encode()).hexdigest()
    return ModelCard(name=target.name, kind=target.kind, description=description,
                     steps=tuple(steps), base_models=tuple(bases.values()),
                     size=sum(sizes), digest=digest, modified=modified)


def _steps(orchestrator: Orchestrator, target: Target) -> tuple[list[str], str]:
    stages = orchestrator.stages
    if target.kind == "chain":
        chain = orchestrator.manifest.chain(target.ref)
        return list(chain.steps), chain.description
    if target.kind == "quick":
        return [stages[0].model], f"Mirador's first stage alone ({stages[0].name})."
    if target.kind == "task":
        return [stages[0].model], ("Background tasks of chat front ends (titles, tags, "
                                   "follow-ups): one quick stage, nothing remembered.")
    if target.kind == "auto":
        return ([s.model for s in stages],
                "Mirador's stages, as many as the question needs: "
                + " → ".join(s.name for s in stages))
    return [target.ref], f"The model {target.ref}, one stage, no persona."


def model_size(entry: ModelEntry, models_dir: Path) -> int:
    path = _model_file(entry, models_dir)
    if path is not None:
        return path.stat().st_size
    return entry.memory_bytes or 0


def _model_file(entry: ModelEntry, models_dir: Path) -> Path | None:
    """The GGUF file a model runs from, if it is on disk (never assembles one)."""
    if entry.path:
        path = Path(entry.path).expanduser()
        return path if path.is_file() else None
    if entry.package:
        from mirador.models.packaged import packaged_size

        try:  # a plain file in its package, or an assembled one; never imports the package
            return packaged_size(entry.package, models_dir)[1]
        except ModelFileError:
            return None
    return None


# -- a staged answer as one text ---------------------------------------------------------


@dataclass
class TextView:
    """Turns an answer's events into text deltas for clients that know only text."""

    mode: Literal["all", "final"] = "all"
    stages: list[str] = field(default_factory=list)
    ends: list[StageEnd] = field(default_factory=list)
    current: str | None = None
    final_streamed: bool = False

    @property
    def staged(self) -> bool:
        return len(self.stages) > 1

    def feed(self, event: Event) -> str:
        """The text this event adds (often empty)."""
        handler = getattr(self, f"_on_{event.type}", None)
        return handler(event) if handler is not None else ""

    def _shows(self, stage: str | None) -> bool:
        return self.mode == "all" or stage == self.stages[-1]

    def _on_ack(self, event: Ack) -> str:
        self.stages = list(event.stages)
        return ""

    def _on_stage_start(self, event: StageStart) -> str:
        self.current = event.stage
        if not self.staged or self.mode == "final":
            return ""
        gap = "\n\n" if event.index else ""
        return (f"{gap}── {event.stage} · {event.persona} · "
                f"confidence {event.confidence:.2f} ──\n\n")

    def _on_token(self, event: Token) -> str:
        if not self._shows(event.stage):
            return ""
        self.final_streamed = self.final_streamed or event.stage == self.stages[-1]
        return event.text

    def _on_error(self, event: ErrorEvent) -> str:
        return f"\n[{event.status}] {event.message}\n" if self.mode == "all" else ""

    def _on_stage_end(self, event: StageEnd) -> str:
        self.ends.append(event)
        return ""

    def _on_done(self, event: Done) -> str:
        if self.mode == "final" and not self.final_streamed and event.status != "error":
            return event.answer  # the last stage failed: the best earlier answer stands in
        return ""


@dataclass(frozen=True)
class Usage:
    """Token counts and durations (seconds) of a finished answer, as compat stats need."""

    prompt_tokens: int
    completion_tokens: int
    total: float
    prompt_eval: float
    eval: float
    load: float


def usage(done: Done, ends: Sequence[StageEnd], query: Query, load: float) -> Usage:
    """Counts from the stages' reports. Prompt tokens are estimated (about 4 characters
    per token): the stages' prompts are built and tokenized inside the backends."""
    prompt_chars = len(query.text) + sum(len(m.content) for m in query.history)
    first = sum(e.ttft or 0.0 for e in ends)
    return Usage(prompt_tokens=max(1, prompt_chars // 4), completion_tokens=done.tokens,
                 total=done.seconds, prompt_eval=first,
                 eval=max(0.0, sum(e.seconds for e in ends) - first), load=load)
