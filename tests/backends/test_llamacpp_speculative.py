"""Prompt-lookup speculative decoding, per-request threads and prefill on the real default
model, on the `Llama` context (`sequences: 1`; the batch engine runs none of these)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mirador.backends import ChatRequest, Message
from mirador.backends.llamacpp import LlamaCppBackend
from mirador.catalog.manifest import ModelEntry, SamplingOptions, Speculation
from tests.support.streams import collect

NOTES = ("The quarterly review showed revenue rose 12 percent, driven by the new "
         "subscription plan. Costs rose 4 percent because of hiring in the support team. "
         "The board asked for a plan to reduce churn among small customers.")
SUMMARY = (Message("system", "Repeat the notes as a short summary."),
           Message("user", f"Notes: {NOTES}\n\nSummarise the notes."))
NEAR_TIE = 0.05  # logits this close may be picked either way by batched and single evals


def greedy(model: ModelEntry, speculative: Speculation | None = None,
           threads: int | None = None) -> ChatRequest:
    return ChatRequest(model=model, messages=SUMMARY, speculative=speculative, threads=threads,
                       options=SamplingOptions(max_tokens=48, temperature=0.0))


async def generated(backend: LlamaCppBackend, request: ChatRequest
                    ) -> tuple[str, list[int], int]:
    """The text, the token ids the context holds after it, and llama.cpp `eval` calls."""
    loaded = backend._models.get(request.model.id)
    if loaded is None:
        await backend.load(request.model)
        loaded = backend._models[request.model.id]
    llm = loaded.llm
    calls = [0]
    plain_eval = llm.eval

    def counted(tokens: Any) -> None:
        calls[0] += 1
        plain_eval(tokens)

    llm.eval = counted
    try:
        pieces, _ = await collect(backend, request)
    finally:
        del llm.eval
    return "".join(p.text for p in pieces), list(llm.input_ids[:llm.n_tokens]), calls[0]


async def test_prompt_lookup_checks_guesses_in_batches_and_keeps_the_greedy_text(
        serial_backend: LlamaCppBackend, smollm_entry: ModelEntry) -> None:
    plain_text, plain_ids, plain_calls = await generated(serial_backend, greedy(smollm_entry))
    spec_text, spec_ids, spec_calls = await generated(
        serial_backend, greedy(smollm_entry, Speculation(draft_tokens=8)))
    assert spec_calls < plain_calls, "guessed tokens must be checked several to a pass"
    llm = serial_backend._models[smollm_entry.id].llm
    assert llm.draft_model is None and not llm._logits_all, "other personas run plainly"
    if spec_text == plain_text:
        return
    split = next(i for i, (a, b) in enumerate(zip(plain_ids, spec_ids, strict=False)) if a != b)
    assert split > len(plain_ids) - 48, "the prompt itself must read the same"
    margin = await _logit_gap(serial_backend, smollm_entry, plain_ids[:split],
                              plain_ids[split], spec_ids[split])
    assert margin < NEAR_TIE, f"the texts part at a clear choice (gap {margin:.3f}): " \
        f"{plain_text!r} vs {spec_text!r}"


async def _logit_gap(backend: LlamaCppBackend, model: ModelEntry, prefix: list[int],
                     one: int, other: int) -> float:
    """How far apart two candidate tokens' logits are after `prefix` (one batch)."""
    import llama_cpp

    loaded = backend._models[model.id]
    async with loaded.lock:
        llm = loaded.llm
        llm.reset()
        llm.eval(prefix)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                       shape=(llm.n_vocab(),))
        top = set(np.argsort(logits)[-2:].tolist())
        assert {one, other} <= top | {one}, "the speculative pick must be a top candidate"
        return float(abs(logits[one] - logits[other]))


async def test_a_request_runs_on_its_threads_and_the_next_on_the_configured_ones(
        serial_backend: LlamaCppBackend, smollm_entry: ModelEntry) -> None:
    import llama_cpp

    await collect(serial_backend, greedy(smollm_entry, threads=1))
    loaded = serial_backend._models[smollm_entry.id]
    assert llama_cpp.llama_n_threads(loaded.llm.ctx) == 1 == loaded.threads
    await collect(serial_backend, greedy(smollm_entry, threads=3))
    assert llama_cpp.llama_n_threads(loaded.llm.ctx) == 3
    await collect(serial_backend, greedy(smollm_entry))
    assert llama_cpp.llama_n_threads(loaded.llm.ctx) == loaded.default_threads


async def test_a_prefilled_prompt_is_not_read_again_and_the_text_is_the_same(
        serial_backend: LlamaCppBackend, smollm_entry: ModelEntry) -> None:
    cold_text, _, _ = await generated(serial_backend, greedy(smollm_entry))
    llm = serial_backend._models[smollm_entry.id].llm
    llm.reset()
    read = await serial_backend.prefill(greedy(smollm_entry))
    assert read > 20, "the whole prompt is read ahead"
    assert await serial_backend.prefill(greedy(smollm_entry)) == 0, "already cached"
    sizes: list[int] = []
    plain_eval = llm.eval

    def sized(tokens: Any) -> None:
        sizes.append(len(tokens))
        plain_eval(tokens)

    llm.eval = sized
    try:
        warm_text, _ = await collect(serial_backend, greedy(smollm_entry))
    finally:
        del llm.eval
    assert sizes and max(sizes) == 1, f"only generated tokens are evaluated: {sizes[:5]}"
    assert "".join(p.text for p in warm_text) == cold_text
