"""Responses tied to an answer: when the client goes away, for whatever reason, the
answer's generation stops within a token, streaming or not.

A streaming response notices the client leaving when it writes (and Starlette listens
for the disconnect meanwhile). A non-streaming one writes nothing until the answer is
whole, so `unless_gone` runs its work beside a watch on the connection and cancels it
(and with it the answer, or its wait in the queue) the moment the client is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

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


CLIENT_GONE = 499  # nginx's "client closed request": logged, never read by anyone


async def unless_gone(request: Request, work: Coroutine[Any, Any, Any]) -> Any:
    """`work`'s result, or, if the client disconnects first, `work` cancelled (its answer
    stops within a token) and an empty response nobody will read."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return Response(status_code=CLIENT_GONE)
    return task.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
