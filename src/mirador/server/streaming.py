"""Streaming responses tied to an answer: when the response ends, for whatever reason
(done, client gone, server stopping), the answer's generation is stopped too."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from mirador.errors import MiradorError
from mirador.server.errors import message_of
from mirador.server.runtime import AnswerStream

log = logging.getLogger("mirador.server")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class AnswerResponse(StreamingResponse):
    """A StreamingResponse that cancels its answer once the response is over."""

    def __init__(self, answer: AnswerStream, body: AsyncIterator[bytes], media_type: str) -> None:
        super().__init__(body, media_type=media_type, headers=SSE_HEADERS)
        self.answer = answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.answer.cancel_soon()  # a no-op when the answer already finished


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def sse_data(data: Any) -> bytes:
    """One unnamed Server-Sent Event (the OpenAI dialect)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def ndjson(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False) + "\n").encode()


def failure_message(exc: Exception) -> str:
    """What a stream says when it breaks: Mirador's message, or a bug logged here."""
    if not isinstance(exc, MiradorError):
        log.error("answer stream failed", exc_info=exc)
    return message_of(exc)
