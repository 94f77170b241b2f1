"""The embedded llama.cpp backend, on the real default model and on tiny GGUFs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mirador.backends import ChatRequest, Message, TextPiece
from mirador.backends.chat_format import formatter_for
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.errors import ModelFileError, ModelLoadError
from mirador.settings import Settings
from tests.support.streams import collect

QUESTION = (Message("system", "Answer briefly."), Message("user", "Name three colours."))


def truncated_copy(source: Path, target: Path, size: int) -> Path:
    target.write_bytes(source.read_bytes()[:size])
    return target


def request(model: ModelEntry, max_tokens: int = 12, **options: object) -> ChatRequest:
    return ChatRequest(model=model, messages=QUESTION,
                       options=SamplingOptions(max_tokens=max_tokens, seed=1, **options))


async def test_the_default_model_streams_text_in_pieces(llama_backend: LlamaCppBackend,
                                            smollm_entry: ModelEntry) -> None:
    pieces, finished = await collect(llama_backend, request(smollm_entry, max_tokens=10,
                                                            temperature=0.0))
    assert len(pieces) >= 2, "text must arrive token by token, not in one block"
    assert "".join(p.text for p in pieces).strip()
    assert finished.completion_tokens <= 10
    assert finished.prompt_tokens > 5


async def test_max_tokens_and_seed_are_honoured(llama_backend: LlamaCppBackend,
                                                smollm_entry: ModelEntry) -> None:
    short, done_short = await collect(llama_backend, request(smollm_entry, max_tokens=3,
                                                             stop=["zzz"]))
    assert done_short.completion_tokens <= 3
    first, _ = await collect(llama_backend, request(smollm_entry, max_tokens=8, temperature=0.9))
    again, _ = await collect(llama_backend, request(smollm_entry, max_tokens=8, temperature=0.9))
    assert [p.text for p in first] == [p.text for p in again], "same seed, same text"


async def test_the_default_models_own_chatml_template_is_used(llama_backend: LlamaCppBackend,
                                                              smollm_entry: ModelEntry) -> None:
    await llama_backend.load(smollm_entry)
    loaded = llama_backend._models[smollm_entry.id]
    assert "<|im_start|>" in loaded.llm.metadata["tokenizer.chat_template"]
    prompt = loaded.formatter(QUESTION)
    assert prompt.text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n"
                                  "<|im_start|>user\nName three colours.<|im_end|>")
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert "<|im_end|>" in prompt.stop or "<|endoftext|>" in prompt.stop
    assert "[INST]" not in prompt.text


def test_a_gguf_without_template_gets_its_architectures_turns() -> None:
    formatter = formatter_for({"general.architecture": "gemma3"}, "<bos>", "<eos>")
    prompt = formatter(QUESTION)
    assert prompt.text.startswith("<start_of_turn>user\nAnswer briefly.\n\nName three colours.")
    assert prompt.text.endswith("<start_of_turn>model\n") and "<end_of_turn>" in prompt.stop


async def test_template_from_the_gguf_wins(llama_backend: LlamaCppBackend,
                                           tiny_entry: ModelEntry) -> None:
    await llama_backend.load(tiny_entry)
    prompt = llama_backend._models[tiny_entry.id].formatter(QUESTION)
    assert prompt.text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>")
    assert prompt.text.endswith("<|im_start|>assistant\n")


async def test_closing_the_stream_stops_generation_and_model_stays_usable(
        llama_backend: LlamaCppBackend, tiny_entry: ModelEntry) -> None:
    await llama_backend.load(tiny_entry)
    loaded = llama_backend._models[tiny_entry.id]
    produced: list[int] = []
    original = loaded.llm.create_completion

    def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for chunk in original(*args, **kwargs):
            produced.append(1)
            yield chunk

    loaded.llm.create_completion = counting
    try:
        stream = llama_backend.stream_chat(request(tiny_entry, max_tokens=400, stop=["zzz"]))
        seen = 0
        async for event in stream:
            seen += isinstance(event, TextPiece)
            if seen == 3:
                break
        await stream.aclose()
        stopped_at = len(produced)
        await asyncio.sleep(0.2)
        assert len(produced) == stopped_at, "generation went on after the stream closed"
        assert stopped_at <= seen + 3, f"{stopped_at} tokens made for {seen} consumed"
    finally:
        loaded.llm.create_completion = original
    pieces, finished = await collect(llama_backend, request(tiny_entry, max_tokens=5,
                                                            stop=["zzz"]))
    assert 0 < finished.completion_tokens <= 5 and pieces


async def test_event_loop_is_not_blocked_while_generating(llama_backend: LlamaCppBackend,
                                                          smollm_entry: ModelEntry) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await collect(llama_backend, request(smollm_entry, max_tokens=20))
    elapsed = time.perf_counter() - started
    task.cancel()
    assert ticks >= 0.3 * elapsed / 0.01, f"only {ticks} ticks in {elapsed:.2f} s"


async def test_concurrent_requests_share_one_load(session_settings: Settings,
                                                  tiny_entry: ModelEntry) -> None:
    backend = LlamaCppBackend(session_settings)
    loads = 0
    original = backend._load_blocking

    def counting(model: ModelEntry):  # type: ignore[no-untyped-def]
        nonlocal loads
        loads += 1
        return original(model)

    backend._load_blocking = counting  # type: ignore[method-assign]
    results = await asyncio.gather(*(collect(backend, request(tiny_entry, max_tokens=4,
                                                              stop=["zzz"]))
                                     for _ in range(3)))
    assert loads == 1
    assert all(0 < finished.completion_tokens <= 4 for _, finished in results)
    assert [m.model_id for m in await backend.loaded()] == ["tiny"]
    await backend.unload(tiny_entry)
    assert await backend.loaded() == []
    await backend.aclose()


async def test_missing_file_says_what_to_do(llama_backend: LlamaCppBackend,
                                            tmp_path: Path) -> None:
    entry = ModelEntry(id="gone", path=str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelFileError, match=r"does not exist.*fix its 'path'"):
        await llama_backend.load(entry)


async def test_file_that_is_not_gguf_is_named_corrupt(llama_backend: LlamaCppBackend,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("this is not a model")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        await llama_backend.load(ModelEntry(id="notes", path=str(path)))


async def test_truncated_gguf_fails_to_load_with_a_clear_error(
        llama_backend: LlamaCppBackend, tiny_gguf: Path, tmp_path: Path) -> None:
    path = truncated_copy(tiny_gguf, tmp_path / "truncated.gguf", 5000)
    with pytest.raises(ModelLoadError, match="complete GGUF file"):
        await llama_backend.load(ModelEntry(id="truncated", path=str(path)))
