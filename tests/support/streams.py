"""Draining a backend's reply stream in tests: one copy for every backend's tests."""

from __future__ import annotations

from mirador.backends import ChatRequest, Finished, TextPiece
from mirador.backends.base import Backend


async def collect(backend: Backend, request: ChatRequest) -> tuple[list[TextPiece], Finished]:
    """Run `request` to its end: the text pieces, then the one Finished that must close the
    stream (anything else in it fails the test)."""
    events = [event async for event in backend.stream_chat(request)]
    assert isinstance(events[-1], Finished), f"the stream ended with {events[-1]!r}"
    assert all(isinstance(e, TextPiece) for e in events[:-1]), "only text before Finished"
    return events[:-1], events[-1]  # type: ignore[return-value]
