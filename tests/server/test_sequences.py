"""Several sequences on one loaded model (`backends.llamacpp.sequences`) through the real
server, with the real `ollama` client: concurrent streams are decoded together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import ollama

from tests.server.conftest import ServerThread


def test_eight_concurrent_ollama_streams_on_the_default_model_all_succeed_together(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server({"max_active": 8},
                         config={"backends": {"llamacpp": {"sequences": 4, "n_threads": 1}}})
    marks: list[tuple[float, str]] = []

    async def one(n: int) -> str:
        text: list[str] = []
        async with ollama.AsyncClient(host=server.url, timeout=300) as client:
            async for part in await client.chat(
                    model="smollm2-135m", stream=True,
                    options={"temperature": 0, "num_predict": 24},
                    messages=[{"role": "user", "content": "Name three colours."}]):
                if not text:
                    marks.append((time.monotonic(), "first"))
                text.append(part.message.content or "")
        marks.append((time.monotonic(), "end"))
        return "".join(text)

    async def all_of_them() -> list[str | BaseException]:
        return await asyncio.gather(*(one(n) for n in range(8)), return_exceptions=True)

    results = asyncio.run(all_of_them())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert results[0] and all(r == results[0] for r in results), "greedy: one answer for all"
    order = [kind for _, kind in sorted(marks)]
    assert order.index("end") >= 4, f"four streams decoded together: {order}"
    assert server.health()["active"] == 0
