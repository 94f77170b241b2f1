"""Stages as data: which persona runs, how sure we are of it, how long it may take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mirador.backends.base import ResponseFormat
from mirador.catalog.manifest import SamplingOptions
from mirador.errors import ConfigError
from mirador.settings import StageConfig


@dataclass(frozen=True)
class ModelStage:
    """One stage of a progressive answer.

    `persona` names a persona or a model from the manifest. `timeout` bounds the
    whole stage; `first_token_timeout` bounds the wait for its first token.
    The other fields, when set, override the persona's own.
    """

    name: str
    persona: str
    confidence: float
    timeout: float = 60.0
    first_token_timeout: float | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    format: ResponseFormat | None = None  # the reply must be JSON (of this schema)

    @property
    def first_token_deadline(self) -> float:
        return min(self.first_token_timeout or self.timeout, self.timeout)

    @classmethod
    def from_config(cls, cfg: StageConfig) -> ModelStage:
        return cls(name=cfg.name, persona=cfg.persona, confidence=cfg.confidence,
                   timeout=cfg.total_timeout, first_token_timeout=cfg.first_token_timeout,
                   system_prompt=cfg.system_prompt, temperature=cfg.temperature,
                   max_tokens=cfg.max_tokens)


@dataclass(frozen=True)
class Overrides:
    """What the caller of one answer asks of every stage it runs.

    `system` is added to each persona's system prompt; `options` (temperature, top_p,
    top_k, seed, repeat_penalty, stop) apply to every stage, stop strings beside the
    persona's own; `max_tokens` bounds the whole answer: each stage may generate what
    the earlier ones left, and once it is spent no further stage runs."""

    system: str | None = None
    options: SamplingOptions | None = None
    max_tokens: int | None = None


def select_stages(known: Sequence[ModelStage], names: Sequence[str]) -> list[ModelStage]:
    """The stages called `names`, in that order; an unknown name is an error."""
    by_name = {s.name: s for s in known}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)} (known: "
                          f"{', '.join(by_name)}); check --stages or 'routing' in config.yaml")
    return [by_name[n] for n in names]
