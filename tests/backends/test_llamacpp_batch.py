"""Several requests at once on one loaded model (`sequences` > 1), on the real default model
and a tiny GGUF, checked against the same requests run one at a time (`sequences: 1`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from mirador.backends import ChatRequest, Message, TextPiece
from mirador.backends.base import Finished, ResponseFormat
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.catalog.manifest import ModelEntry, SamplingOptions
from mirador.settings import Settings
from tests.backends.conftest import with_sequences
from tests.support.streams import collect

QUESTIONS = ("Name three colours.", "What is an index fund?", "How do I clean a bicycle chain?",
             "What are signs of burnout?")


def ask(model: ModelEntry, question: str, fmt: ResponseFormat | None = None,
        threads: int | None = None, **options: object) -> ChatRequest:
    options.setdefault("max_tokens", 32)
    options.setdefault("temperature", 0.0)
    return ChatRequest(model=model, format=fmt, threads=threads,
                       messages=(Message("system", "Answer briefly."), Message("user", question)),
                       options=SamplingOptions(**options))  # type: ignore[arg-type]


async def answer(backend: LlamaCppBackend, request: ChatRequest) -> tuple[str, Finished]:
    pieces, finished = await collect(backend, request)
    return "".join(p.text for p in pieces), finished


async def timeline(backend: LlamaCppBackend, request: ChatRequest, marks: list[str],
                   name: str) -> str:
    """The answer, marking in `marks` when its first piece came and when it ended."""
    text: list[str] = []
    async for event in backend.stream_chat(request):
        if isinstance(event, TextPiece):
            if not text:
                marks.append(f"first {name}")
            text.append(event.text)
    marks.append(f"end {name}")
    return "".join(text)


@pytest.fixture(scope="module")
async def quad_backend(session_settings: Settings) -> LlamaCppBackend:
    backend = LlamaCppBackend(with_sequences(session_settings, 4))
    yield backend  # type: ignore[misc]
    await backend.aclose()


async def test_four_concurrent_greedy_answers_are_each_one_alone(
        quad_backend: LlamaCppBackend, serial_backend: LlamaCppBackend,
        smollm_entry: ModelEntry) -> None:
    requests = [ask(smollm_entry, q) for q in QUESTIONS]
    alone = [await answer(serial_backend, r) for r in requests]
    marks: list[str] = []
    together = await asyncio.gather(*(timeline(quad_backend, r, marks, str(i))
                                      for i, r in enumerate(requests)))
    assert together == [text for text, _ in alone]
    assert all(m.startswith("first") for m in marks[:4]), f"decoded together, not in turn: {marks}"
    engine = quad_backend._models[smollm_entry.id].engine
    assert engine is not None and sorted(engine._free) == [0, 1, 2, 3] and not engine._active


async def test_each_sequence_keeps_its_own_sampling_stops_length_and_format(
        quad_backend: LlamaCppBackend, serial_backend: LlamaCppBackend,
        smollm_entry: ModelEntry) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}},
              "required": ["colour"]}
    requests = [
        ask(smollm_entry, QUESTIONS[0], max_tokens=5),
        ask(smollm_entry, QUESTIONS[1], stop=[" type"]),
        ask(smollm_entry, "Give one colour as JSON.", fmt=ResponseFormat(schema=schema),
            max_tokens=40),
        ask(smollm_entry, QUESTIONS[2], temperature=0.9, seed=7, top_k=20, top_p=0.8),
        ask(smollm_entry, QUESTIONS[3], temperature=0.7, seed=3, repeat_penalty=1.5),
        ask(smollm_entry, QUESTIONS[3], temperature=0.7, seed=4, repeat_penalty=1.5),
    ]
    alone = [await answer(serial_backend, r) for r in requests]
    together = await asyncio.gather(*(answer(quad_backend, r) for r in requests))
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert [(f.reason, f.completion_tokens) for _, f in together] == [
        (f.reason, f.completion_tokens) for _, f in alone]
    (short, done_short), (stopped, _), (made, _) = together[:3]
    assert done_short.reason == "length" and done_short.completion_tokens == 5
    assert " type" not in stopped and stopped.startswith("An index fund is a")
    assert isinstance(json.loads(made)["colour"], str)
    assert together[4][0] != together[5][0], "different seeds, different samples"


async def test_a_cancelled_sequence_frees_its_slot_and_the_others_go_on(
        quad_backend: LlamaCppBackend, serial_backend: LlamaCppBackend,
        smollm_entry: ModelEntry) -> None:
    kept = [ask(smollm_entry, q, max_tokens=40) for q in QUESTIONS[1:3]]
    alone = [(await answer(serial_backend, r))[0] for r in kept]
    engine = quad_backend._models[smollm_entry.id].engine
    assert engine is not None

    async def abandoned() -> float:
        stream = quad_backend.stream_chat(ask(smollm_entry, QUESTIONS[0], max_tokens=400))
        async with contextlib.aclosing(stream):
            async for event in stream:
                if isinstance(event, TextPiece):
                    break
        # closing the stream returns once the engine has freed the sequence
        assert all(s.max_tokens == 40 for s in engine._active.values()), "freed within a step"
        return time.perf_counter()

    others = [answer(quad_backend, r) for r in kept]
    _, *results = await asyncio.gather(abandoned(), *others)
    assert [text for text, _ in results] == alone
    assert sorted(engine._free) == [0, 1, 2, 3] and not engine._active


async def test_more_requests_than_sequences_wait_in_the_engine_and_all_finish(
        session_settings: Settings, tiny_entry: ModelEntry) -> None:
    # Against the engine's own answers one at a time: llama-cpp-python's one-at-a-time path
    # runs past max_tokens while a UTF-8 character is unfinished, which this engine does not
    backend = LlamaCppBackend(with_sequences(session_settings, 2))
    try:
        requests = [ask(tiny_entry, q, max_tokens=12, temperature=0.8, seed=i)
                    for i, q in enumerate(QUESTIONS * 2)]
        alone = [await answer(backend, r) for r in requests]
        together = await asyncio.gather(*(answer(backend, r) for r in requests))
        def seen(results: list[tuple[str, Finished]]) -> list[tuple[str, str, int]]:
            return [(text, f.reason, f.completion_tokens) for text, f in results]

        assert seen(together) == seen(alone)
        assert all(f.completion_tokens <= 12 for _, f in together)
    finally:
        await backend.aclose()


async def test_requests_the_engine_cannot_run_as_asked_run_on_the_llama_context(
        quad_backend: LlamaCppBackend, serial_backend: LlamaCppBackend,
        smollm_entry: ModelEntry) -> None:
    loaded = await quad_backend._get(smollm_entry)
    other = loaded.default_threads + 1
    own_threads = ask(smollm_entry, QUESTIONS[0], threads=other)
    plain = ask(smollm_entry, QUESTIONS[1])
    both = await asyncio.gather(answer(quad_backend, own_threads), answer(quad_backend, plain))
    assert loaded.threads == other, "a custom thread count ran on the Llama context"
    assert [t for t, _ in both] == [(await answer(serial_backend, r))[0]
                                    for r in (own_threads, plain)]


async def test_one_sequence_keeps_the_one_at_a_time_path(
        serial_backend: LlamaCppBackend, smollm_entry: ModelEntry) -> None:
    assert serial_backend.sequences(smollm_entry) == 1
    await serial_backend.load(smollm_entry)
    assert serial_backend._models[smollm_entry.id].engine is None


async def test_memory_estimate_counts_every_sequences_cache(
        quad_backend: LlamaCppBackend, serial_backend: LlamaCppBackend,
        smollm_entry: ModelEntry) -> None:
    from mirador.catalog.gguf_info import read_gguf_info
    from mirador.catalog.sizes import kv_cache_bytes

    info = read_gguf_info(serial_backend.model_path(smollm_entry))
    one_window = kv_cache_bytes(info, serial_backend.context_size(smollm_entry))
    extra = quad_backend.estimate_bytes(smollm_entry) - serial_backend.estimate_bytes(smollm_entry)
    assert extra == 4 * one_window
    embedder = smollm_entry.model_copy(update={"embedding": True})
    assert quad_backend.sequences(embedder) == 1


async def test_a_request_that_fails_in_the_engine_gets_its_error_and_the_others_go_on(
        quad_backend: LlamaCppBackend, tiny_entry: ModelEntry) -> None:
    import queue
    import threading

    from mirador.backends.llamacpp_batch import DONE, Job

    loaded = await quad_backend._get(tiny_entry)
    assert loaded.engine is not None
    tokens = loaded.llm.tokenize(b"hello there", add_bos=False, special=True)
    broken: queue.Queue[object] = queue.Queue()
    fine: queue.Queue[object] = queue.Queue()
    # a fault injected where the engine builds the sampler: a grammar that is not one
    loaded.engine.submit(Job(tokens, {"stop": [], "max_tokens": 4, "grammar": object()},
                             threading.Event(), broken.put))
    loaded.engine.submit(Job(tokens, {"stop": [], "max_tokens": 4, "temperature": 0.0},
                             threading.Event(), fine.put))

    def drained(q: queue.Queue[object]) -> list[object]:
        items = []
        while (item := q.get(timeout=60)) is not DONE:
            items.append(item)
        return items

    failed, ended = await asyncio.to_thread(drained, broken), await asyncio.to_thread(drained, fine)
    assert len(failed) == 1 and isinstance(failed[0], AttributeError)
    assert isinstance(ended[-1], Finished) and ended[-1].completion_tokens == 4
    assert sorted(loaded.engine._free) == [0, 1, 2, 3]
