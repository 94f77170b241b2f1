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

Ollama's other documented options are type-checked (so `"top_k": "x"` is a 400)
but not applied yet; unknown ones are ignored, as Ollama does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ConfigDict, Field, field_validator

from mirador.server.schemas import Lenient

NO_LIMIT, FILL_CONTEXT = -1, -2


@dataclass(frozen=True)
class Sampling:
    """The client's sampling wishes, validated and capped; None: the target's own."""

    temperature: float | None = None
    max_tokens: int | None = None


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
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    typical_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, ge=0.0)
    repeat_last_n: int | None = Field(default=None, ge=-1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    num_ctx: int | None = Field(default=None, ge=1)
    num_keep: int | None = Field(default=None, ge=-1)
    num_batch: int | None = Field(default=None, ge=1)
    num_thread: int | None = Field(default=None, ge=0)
    num_gpu: int | None = Field(default=None, ge=-1)
    mirostat: int | None = Field(default=None, ge=0, le=2)
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None

    @field_validator("num_predict")
    @classmethod
    def _tokens(cls, value: int | None) -> int | None:
        if value is not None and value < 1 and value not in (NO_LIMIT, FILL_CONTEXT):
            raise ValueError(f"{value} is not a token count; send a positive number, or -1 "
                             "for no limit (capped at the server's server.max_tokens)")
        return value

    def sampling(self, cap: int) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=capped(self.num_predict, cap))
