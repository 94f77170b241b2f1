"""What Ollama and OpenAI clients see: Mirador's chains as models, a staged answer as text.

Model names:

    mirador:auto (or mirador, mirador:latest)  the configured stages, routed by complexity
    mirador:quick                              the first configured stage alone
    mirador:<chain id>                         a chain from the manifest, step by step
    mirador:task                               a chat front end's background tasks
                                               (titles, tags): one quick stage (tasks.py)
    <model id> (or <model id>:latest)          one stage on that manifest model, no persona

On every target the client's system prompt is added to each stage's persona prompt,
its sampling options apply to every stage, and its token limit bounds the whole
answer (see `mirador.orchestration.stages.Overrides`).

A staged answer becomes one stream of text. With `server.compat_stages: all` (the
default) every stage streams in turn under a header line (`── synthesis · synthesizer
· confidence 0.95 ──`) so a plain chat client shows the answer deepening; a failed
stage adds a `[timeout] ...` line. With `final`, only the last planned stage streams
(or, if it failed, the best answer there is). A single-model answer has no headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from mirador.backends import Message, context_sizer_of
from mirador.catalog.manifest import ModelEntry
from mirador.errors import ContextOverflowError, ModelFileError, ModelNotFoundError
from mirador.orchestration.events import Ack, Done, ErrorEvent, Event, StageEnd, StageStart, Token
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.stages import ModelStage
from mirador.server.errors import BadRequestError
from mirador.server.options import Sampling
from mirador.server.runtime import AnswerRequest
from mirador.text_tokens import estimate_tokens

PREFIX = "mirador"
SYSTEM_ROLES = ("system", "developer")  # OpenAI's developer message is a system message
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
    """The answer a target runs, with the client's system prompt (added to each persona's)
    and sampling on every stage, and its token limit over the whole answer."""
    overrides = (sampling or Sampling()).overrides(system)
    if target.kind == "model":
        _check_chats(orchestrator, target.ref)
    if target.kind != "model":
        return replace(_STAGED[target.kind](orchestrator, target, query), overrides=overrides)
    last = orchestrator.stages[-1]
    stage = ModelStage(name=target.ref, persona=target.ref, confidence=1.0,
                       timeout=max(last.timeout, SINGLE_MODEL_TIMEOUT),
                       first_token_timeout=last.first_token_timeout)
    return AnswerRequest(query=query, stages=[stage], overrides=overrides)


def _check_chats(orchestrator: Orchestrator, model_id: str) -> None:
    refuse_embedders([orchestrator.manifest.model(model_id)])


def refuse_embedders(models: Sequence[ModelEntry]) -> None:
    """An embedding model makes vectors, not answers: a 400 that says so, raised before
    anything is loaded or counted."""
    for entry in models:
        if entry.embedding:
            raise BadRequestError(f"model '{entry.id}' is an embedding model: it makes "
                                  "vectors, not chat; send it to /api/embed or "
                                  "/v1/embeddings, or pick a chat model")


def capabilities(orchestrator: Orchestrator, target: Target) -> list[str]:
    """What a target does: `embedding` for a manifest embedding model, else `completion`."""
    if target.kind == "model" and orchestrator.manifest.model(target.ref).embedding:
        return ["embedding"]
    return ["completion"]


async def check_fits(orchestrator: Orchestrator, models: Sequence[ModelEntry], query: Query,
                     system: str | None = None, limit: int | None = None) -> None:
    """ContextOverflowError (a 400) when the client's text alone overflows a model's window,
    or the smaller `limit` the client set (Ollama's num_ctx; more than the window is a 400).

    Counting runs in a worker thread, and only for text at least as many bytes as the
    window has tokens: a token covers at least one byte, so shorter text always fits."""
    text = "\n".join([system or "", *(m.content for m in query.history), query.text])
    size = len(text.encode("utf-8"))
    for entry in {m.id: m for m in models}.values():
        window = _window(orchestrator, entry, limit)
        if size < window:
            continue
        tokens = await orchestrator.manager.count_tokens(entry, text)
        if tokens >= window:
            raise ContextOverflowError(
                f"the prompt is {tokens} tokens but model '{entry.id}' has a context window "
                f"of {window} tokens; send a shorter prompt or fewer earlier messages")


def _window(orchestrator: Orchestrator, entry: ModelEntry, limit: int | None) -> int:
    window = context_window(orchestrator, entry)
    if limit is not None and limit > window:
        raise BadRequestError(f"options.num_ctx: {limit} is more than the context window of "
                              f"model '{entry.id}' ({window} tokens); send at most {window}, "
                              "or leave num_ctx out")
    return min(window, limit or window)


def context_window(orchestrator: Orchestrator, entry: ModelEntry) -> int:
    """The window `entry` runs with: its backend's setting where it has one."""
    sizer = context_sizer_of(orchestrator.manager.backend(entry.backend))
    if sizer is not None:
        return sizer.context_size(entry)
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


def chat_query(messages: Sequence[tuple[str, str]],
               images: Sequence[Sequence[str]] = ()) -> tuple[Query, str | None]:
    """A chat (role, content) list, with each message's images if any, as a Query (the last
    user turn, earlier turns as history) and the client's system prompt."""
    system = "\n\n".join(c for r, c in messages if r in SYSTEM_ROLES and c) or None
    pictures = list(images) or [()] * len(messages)
    turns = [Message(r, c, tuple(p)) for (r, c), p in zip(messages, pictures, strict=True)  # type: ignore[arg-type]
             if r in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].content.strip():
        raise BadRequestError("the last message must be the user's, with some text; send "
                              'messages ending with {"role": "user", "content": "..."}')
    last = turns[-1]
    return Query(text=last.content.strip(), history=tuple(turns[:-1]), images=last.images), system


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
        return [stages[0].persona], f"Mirador's first stage alone ({stages[0].name})."
    if target.kind == "task":
        return [stages[0].persona], ("Background tasks of chat front ends (titles, tags, "
                                   "follow-ups): one quick stage, nothing remembered.")
    if target.kind == "auto":
        return ([s.persona for s in stages],
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
        from mirador.catalog.packaged import packaged_size

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
    stops: tuple[str, ...] = ()  # the client's stop strings: kept out of the framing too
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
        if self.stops:  # the stages never write a stop string; neither may the headers
            return _without(f"{gap}── {event.stage} ──\n\n", self.stops)
        return (f"{gap}── {event.stage} · {event.persona} · "
                f"confidence {event.confidence:.2f} ──\n\n")

    def _on_token(self, event: Token) -> str:
        if not self._shows(event.stage):
            return ""
        self.final_streamed = self.final_streamed or event.stage == self.stages[-1]
        return event.text

    def _on_error(self, event: ErrorEvent) -> str:
        if self.mode != "all":
            return ""
        return _without(f"\n[{event.status}] {event.message}\n", self.stops)

    def _on_stage_end(self, event: StageEnd) -> str:
        self.ends.append(event)
        return ""

    def _on_done(self, event: Done) -> str:
        if self.mode == "final" and not self.final_streamed and event.status != "error":
            return event.answer  # the last stage failed: the best earlier answer stands in
        return ""


def _without(text: str, stops: Sequence[str]) -> str:
    """`text` with every occurrence of the stop strings taken out (until none is left)."""
    while stops and any(stop in text for stop in stops):
        for stop in stops:
            text = text.replace(stop, "")
    return text


def finish_reason(ends: Sequence[StageEnd]) -> Literal["stop", "length"]:
    """`length` when the answer's last stage was cut by a token limit, else `stop`."""
    return "length" if ends and ends[-1].finish_reason == "length" else "stop"


@dataclass(frozen=True)
class Usage:
    """Token counts and durations (seconds) of a finished answer, in Ollama's meaning."""

    prompt_tokens: int
    completion_tokens: int
    total: float
    prompt_eval: float  # evaluating the stages' prompts
    eval: float  # generating
    load: float  # loading models for this answer
    ttft: float  # from the request to the answer's first token


def usage(done: Done, ends: Sequence[StageEnd], query: Query) -> Usage:
    """Counts and durations summed over the stages, as their backends measured them: every
    stage evaluates its own prompt, counted by its model's tokenizer. A backend that does
    not count prompt tokens (a server that sends no usage) is estimated at about four
    characters a token; one that does not time prompt evaluation, by its first-token time."""
    prompt = sum(e.prompt_tokens or 0 for e in ends)
    if not prompt:
        prompt = max(1, estimate_tokens(query.text, *(m.content for m in query.history)))
    prompt_eval = sum(e.prompt_seconds if e.prompt_seconds is not None else e.ttft or 0.0
                      for e in ends)
    generating = sum(e.eval_seconds if e.eval_seconds is not None
                     else max(0.0, e.seconds - (e.ttft or 0.0)) for e in ends)
    return Usage(prompt_tokens=prompt, completion_tokens=sum(e.tokens for e in ends),
                 total=done.seconds, prompt_eval=prompt_eval, eval=generating,
                 load=sum(e.load_seconds for e in ends), ttft=done.ttft or 0.0)
