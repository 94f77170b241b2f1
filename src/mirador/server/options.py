"""Generation options as each API spells them, checked at the edge, turned into one `Sampling`.

Every API has one options model here (Ollama's `options`, OpenAI's top-level
fields), so a wrong type or value is a 400 naming the field, never a 500 from
deep inside a backend. `Sampling` is what the rest of the server uses: the
client's temperature and its token limit, already capped by `server.max_tokens`
and the model's context window.

    num_predict / max_tokens   Mirador
    -1 (Ollama: no limit)      server.max_tokens
    -2 (Ollama: fill context)  server.max_tokens
    N > 0                      min(N, server.max_tokens)
    0, < -2                    400: say what to send instead

Applied on every stage: temperature, top_p, top_k, seed, stop, repeat_penalty, and
the token limit for the whole answer. `num_ctx` is a bound: at most the model's
window, and the prompt must fit in it. Ollama's other documented options
(min_p, mirostat, num_thread, ...) are refused with a 400 naming the option, since
Mirador does not apply them; options Ollama does not document are ignored, as
Ollama does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from mirador.catalog.manifest import SamplingOptions
from mirador.orchestration.stages import Overrides
from mirador.server.schemas import Lenient

NO_LIMIT, FILL_CONTEXT = -1, -2


@dataclass(frozen=True)
class Sampling:
    """The client's sampling wishes, validated and capped; None: the target's own.

    `options` apply to every stage; `max_tokens` bounds the whole answer; `window`
    (Ollama's num_ctx) is the context the prompt must fit in."""

    options: SamplingOptions = field(default_factory=SamplingOptions)
    max_tokens: int | None = None
    window: int | None = None

    def overrides(self, system: str | None) -> Overrides:
        """What every stage of the answer is asked to do."""
        return Overrides(system=system, options=self.options, max_tokens=self.max_tokens)


# Ollama options Mirador applies, and SamplingOptions' names for them.
APPLIED = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
           "seed": "seed", "stop": "stop", "repeat_penalty": "repeat_penalty"}
REFUSED = ("min_p", "typical_p", "repeat_last_n", "presence_penalty", "frequency_penalty",
           "num_keep", "num_batch", "num_thread", "num_gpu", "main_gpu", "mirostat",
           "mirostat_tau", "mirostat_eta", "tfs_z", "penalize_newline", "numa", "low_vram",
           "use_mmap", "use_mlock", "vocab_only", "f16_kv", "logits_all")


def not_applied(value: Any, name: str, applied: str) -> Any:
    """`value` if unset; a ValueError (a 400 naming the field) when a client sets it."""
    if value is not None:
        raise ValueError(f"Mirador does not apply {name}; leave it out (it applies "
                         f"{applied})")
    return value


def capped(requested: int | None, cap: int) -> int | None:
    """A client's token limit within the server's: -1 and -2 ('no limit') mean the cap."""
    if requested is None:
        return None
    if requested in (NO_LIMIT, FILL_CONTEXT):
        return cap
    return min(requested, cap)


class OllamaOptions(Lenient):
    """Ollama's `options` object. Numbers must be JSON numbers (no "0.5" strings)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    num_predict: int | None = Field(default=None, description="Tokens to generate: N > 0, "
                                    "or -1 (no limit) / -2 (fill the context), both capped "
                                    "at server.max_tokens.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    typical_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    repeat_last_n: int | None = Field(default=None, ge=-1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    num_ctx: int | None = Field(default=None, ge=1, description="At most the model's "
                                "context window; the prompt must fit in it.")
    num_keep: int | None = Field(default=None, ge=-1)
    num_batch: int | None = Field(default=None, ge=1)
    num_thread: int | None = Field(default=None, ge=0)
    num_gpu: int | None = Field(default=None, ge=-1)
    main_gpu: int | None = None
    mirostat: int | None = Field(default=None, ge=0, le=2)
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    tfs_z: float | None = None
    penalize_newline: bool | None = None
    numa: bool | None = None
    low_vram: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    vocab_only: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None

    @field_validator(*REFUSED, mode="after")
    @classmethod
    def _refused(cls, value: Any, info: Any) -> Any:
        return not_applied(value, info.field_name,
                           ", ".join([*APPLIED, "num_predict", "num_ctx"]))

    @field_validator("num_predict")
    @classmethod
    def _tokens(cls, value: int | None) -> int | None:
        if value is not None and value < 1 and value not in (NO_LIMIT, FILL_CONTEXT):
            raise ValueError(f"{value} is not a token count; send a positive number, or -1 "
                             "for no limit (capped at the server's server.max_tokens)")
        return value

    def sampling(self, cap: int) -> Sampling:
        values = {ours: getattr(self, theirs) for theirs, ours in APPLIED.items()}
        values["stop"] = values["stop"] or None  # []: the persona's stop strings stand
        return Sampling(options=SamplingOptions(**values), max_tokens=capped(self.num_predict, cap),
                        window=self.num_ctx)
