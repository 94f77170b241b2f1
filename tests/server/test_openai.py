"""The OpenAI-compatible API, driven by the official `openai` Python client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from tests.server.conftest import ServerThread

QUESTION = [{"role": "user", "content": "Give me one tip for better sleep."}]


@pytest.fixture
async def aclient(server: ServerThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120,
                                  max_retries=0) as c:
        yield c


def test_models_lists_chains_and_manifest_models(oai: openai.OpenAI) -> None:
    ids = {m.id for m in oai.models.list()}
    assert {"mirador:auto", "mirador:quick", "mirador:duo", "smollm2-135m", "tiny"} <= ids


def test_completion_without_streaming(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="mirador:quick", messages=QUESTION)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "mirador:quick"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")  # length: cut at the stage's limit
    assert reply.usage and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_chain_shows_each_stage_in_turn(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="mirador:duo", messages=QUESTION, stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 4
    assert text.index("── brief ·") < text.index("── brief_final ·")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and finishes.count(finishes[-1]) == 1
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


async def test_async_streaming_on_one_model(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="smollm2-135m", stream=True, max_tokens=8, temperature=0,
        messages=[{"role": "system", "content": "You are terse."}, *QUESTION])
    pieces = [c.choices[0].delta.content async for c in stream
              if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2 and "──" not in "".join(pieces)


async def test_async_without_streaming_with_content_parts(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(
        model="tiny", max_tokens=6,
        messages=[{"role": "user", "content": [{"type": "text", "text": "the plan"}]}])
    assert reply.choices[0].message.content


def test_unknown_model_and_bad_messages_are_clear_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        oai.chat.completions.create(model="gpt-9", messages=QUESTION)
    assert "model 'gpt-9' not found" in missing.value.message
    assert missing.value.body and missing.value.body["type"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="mirador:quick",
                                    messages=[{"role": "assistant", "content": "hi"}])
    assert "the last message must be the user's" in bad.value.message
