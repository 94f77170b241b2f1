"""Honour or refuse: the request fields Mirador cannot honour, and Ollama's keep_alive.

A field a client sets is either applied (see the README's field table) or refused
with a 400 that names it and says what to send instead; never accepted and then
ignored. The refusals' wording lives here so the Ollama and OpenAI routes say the
same thing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mirador.orchestration.orchestrator import Orchestrator
from mirador.server.errors import BadRequestError

# Roles a chat may use (OpenAI's `developer` is a system message).
ROLES = ("system", "user", "assistant")
OPENAI_ROLES = ("system", "developer", "user", "assistant")
VISION_TAG = "vision"  # a manifest model with this tag can see images

_GO_DURATION = re.compile(r"^-?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def refuse(refused: Sequence[tuple[str, str]]) -> None:
    """A 400 naming every refused field, if there is any."""
    if refused:
        raise BadRequestError("; ".join(f"{name}: {why}" for name, why in refused))


def bad_role(role: str, roles: Sequence[str]) -> str:
    return f"'{role}' is not a role Mirador knows; use one of {', '.join(roles)}"


def sees(orchestrator: Orchestrator, target: Any) -> bool:
    """Whether images may go to `target`: one manifest model tagged `vision` on Ollama or an
    OpenAI-compatible server, which receive them in their own wire format."""
    if target.kind != "model":
        return False
    entry = orchestrator.manifest.model(target.ref)
    return VISION_TAG in entry.tags and entry.backend in ("ollama", "openai")


def base64_images(images: Sequence[str] | None) -> Sequence[str] | None:
    """`images` if each is base64 (Ollama's wire form); ValueError naming the bad one."""
    for i, image in enumerate(images or ()):
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"image {i} is not base64; send each image file base64-encoded"
                             ) from None
    return images


def vision_models(orchestrator: Orchestrator) -> list[str]:
    """Manifest models that can see images (tagged `vision`)."""
    return [m.id for m in orchestrator.manifest.models
            if VISION_TAG in m.tags and m.backend in ("ollama", "openai")]


def no_images(orchestrator: Orchestrator, target: object) -> str:
    name = getattr(target, "name", target)
    seeing = vision_models(orchestrator)
    where = (f"these models of this server can: {', '.join(seeing)}" if seeing else
             "none of this server's models can (an Ollama or OpenAI-compatible vision model "
             f"declared in ~/.mirador/manifest.yaml with tags: [{VISION_TAG}] can)")
    return f"model '{name}' cannot see images; {where}; or send the request without images"


@dataclass(frozen=True)
class Keep:
    """Ollama's keep_alive: `given` or not; `unload` after the answer; else `seconds`
    (None: keep the model loaded until unloaded)."""

    given: bool = False
    unload: bool = False
    seconds: float | None = None


def keep_alive(value: float | str | None) -> Keep:
    """Ollama's keep_alive: seconds, or a Go duration ('5m', '1h30m'); 0 unloads after the
    answer, negative keeps the model loaded. Anything else is a 400 naming keep_alive."""
    if value is None:
        return Keep()
    seconds = value if isinstance(value, (int, float)) else _duration(value.strip())
    if seconds < 0:
        return Keep(given=True)
    if seconds == 0:
        return Keep(given=True, unload=True)
    return Keep(given=True, seconds=float(seconds))


def _duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    if not _GO_DURATION.match(text):
        raise BadRequestError(f"keep_alive: '{text}' is not a duration; send seconds (300), "
                              "a duration ('5m', '1h30m'), 0 to unload the model after the "
                              "answer, or a negative number to keep it loaded")
    total = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    return -total if text.startswith("-") else total
