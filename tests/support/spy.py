"""A real backend with every request it receives kept for inspection (what each stage saw)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mirador.backends import BackendEvent, ChatRequest
from mirador.backends.llamacpp import LlamaCppBackend


class SpyBackend:
    """Delegates to the real llama.cpp backend and records each ChatRequest."""

    name = "llamacpp"

    def __init__(self, real: LlamaCppBackend) -> None:
        self.real = real
        self.requests: list[ChatRequest] = []

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[BackendEvent]:
        self.requests.append(request)
        return self.real.stream_chat(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)
