"""Per-request speculative decoding and thread count on a loaded llama.cpp model.

Prompt lookup (`llama_cpp.llama_speculative.LlamaPromptLookupDecoding`) guesses the next
tokens by finding the latest n-gram earlier in the prompt; llama.cpp then evaluates the
guesses in one batch and keeps the run it would have sampled itself. llama-cpp-python
reads its `draft_model` on every step of `generate`, so a persona can switch it on for
its own requests while others share the same loaded weights: no reload.

Checking a guess needs the logits of every token in the batch, not only the last
(`logits_all`), and llama-cpp-python copies them into a `scores` array with a row per
context position (n_ctx x n_vocab floats: 768 MiB for SmolLM2 at n_ctx 4096). That array
is made on the first speculative request and kept; the memory is reserved, not written,
so only the rows a prompt reaches become resident (about 200 KB a token for SmolLM2's
49,152-token vocabulary). Evaluating every token's logits also makes reading the prompt
slower: `bench/speculation.py` measures what it costs and what it buys.

Outputs under greedy decoding are the model's own choices, but not always bit-identical
to decoding one token at a time: llama.cpp's CPU kernels round a batch of tokens
differently from a single token, and where two candidates' logits are within about
0.01 of each other the pick can flip (tests/backends/test_llamacpp_speculative.py).

Prefill: `prefill_blocking` evaluates a prompt into the context's cache without sampling;
llama-cpp-python's `generate` then finds the whole prompt cached and samples at once. The
orchestrator uses it to read the likely first stage's prompt while the chain is chosen.

Threads: `llama_set_n_threads` changes a context's thread count between requests, a C
call of microseconds, so an energy profile's `threads` needs no reload.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mirador.catalog.manifest import Speculation


@contextmanager
def speculating(llm: Any, spec: Speculation | None, spare: list[Any]) -> Iterator[None]:
    """Run the block with `spec`'s draft model on `llm` (nothing when `spec` is None);
    `spare` keeps the full-context scores array between requests (one slot)."""
    if spec is None:
        yield
        return
    import numpy as np
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    if not spare:  # made once per loaded model: reserved memory, resident as used
        spare.append(np.empty((llm.n_ctx(), llm.n_vocab()), dtype=np.single))
    own_scores, own_all = llm.scores, llm._logits_all
    llm.scores, llm._logits_all = spare[0], True
    llm.draft_model = LlamaPromptLookupDecoding(max_ngram_size=spec.ngram,
                                                num_pred_tokens=spec.draft_tokens)
    try:
        yield
    finally:
        llm.draft_model = None
        llm.scores, llm._logits_all = own_scores, own_all


def set_threads(llm: Any, threads: int) -> None:
    """Generate and read prompts on `threads` CPU threads from the next request on."""
    import llama_cpp

    llama_cpp.llama_set_n_threads(llm.ctx, threads, threads)
    llm.context_params.n_threads = llm.context_params.n_threads_batch = threads
    llm.n_threads = llm.n_threads_batch = threads


def prefill_blocking(llm: Any, text: str, add_bos: bool) -> int:
    """Evaluate `text` into `llm`'s cache, reusing what is already there; the tokens read."""
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
    if len(tokens) >= llm.n_ctx():
        return 0  # the request itself will say it does not fit
    cached = list(llm.input_ids[:llm.n_tokens])
    prefix = llm.longest_token_prefix(cached, tokens)
    if prefix == len(tokens) == llm.n_tokens and not llm._requires_eval:
        return 0
    keep = min(prefix, len(tokens) - 1)  # the last token is read again for its logits
    llm.n_tokens = keep
    llm.eval(tokens[keep:])
    return len(tokens) - keep
