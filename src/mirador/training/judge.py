"""Judging an adapter where it will run: llama.cpp, on the same quantized base.

The loss is the mean negative log-likelihood of each answer's tokens given its
prompt, computed from llama.cpp's logits, so a deployed adapter is judged as
the file answers will use, not as the float32 torch copy it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from mirador.errors import ModelLoadError
from mirador.training.lora import Encoded


def _llama(base: Path, adapter: Path | None, n_ctx: int, threads: int) -> Any:
    import llama_cpp

    options: dict[str, Any] = {"lora_path": str(adapter)} if adapter else {}
    try:
        return llama_cpp.Llama(str(base), n_ctx=n_ctx, n_threads=threads, logits_all=True,
                               verbose=False, **options)
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"llama.cpp could not load {base}"
                             f"{' with the adapter ' + str(adapter) if adapter else ''} "
                             f"({exc})") from None


def answer_loss(base: Path, adapter: Path | None, examples: Sequence[Encoded],
                threads: int = 1) -> float:
    """Mean per-token loss of the answers in `examples` (nan when there are none)."""
    if not examples:
        return math.nan
    n_ctx = max(len(e.ids) for e in examples) + 8
    with closing(_llama(base, adapter, n_ctx, threads)) as llm:
        losses = [_example_loss(llm, e) for e in examples]
    return float(np.mean(losses))


def _example_loss(llm: Any, example: Encoded) -> float:
    llm.reset()
    llm.eval(list(example.ids))
    scores = np.asarray(llm.scores[:len(example.ids)], dtype=np.float64)
    losses = []
    for k in range(1, len(example.ids)):
        if example.labels[k] == -100:
            continue
        row = scores[k - 1]
        top = row.max()
        losses.append(top + math.log(float(np.exp(row - top).sum())) - row[example.ids[k]])
    return float(np.mean(losses)) if losses else 0.0


def generate(base: Path, adapter: Path | None, prompts: Sequence[str], system: str | None,
             max_tokens: int = 96, threads: int = 1,
             repeat_penalty: float | None = None) -> list[str]:
    """Greedy answers to `prompts`, to see what an adapter does to the output."""
    import llama_cpp

    options: dict[str, Any] = {"lora_path": str(adapter)} if adapter else {}
    llm = llama_cpp.Llama(str(base), n_ctx=1024, n_threads=threads, verbose=False, **options)
    with closing(llm):
        return [_answer(llm, system, prompt, max_tokens, repeat_penalty) for prompt in prompts]


def _answer(llm: Any, system: str | None, prompt: str, max_tokens: int,
            repeat_penalty: float | None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}]
    penalty = {} if repeat_penalty is None else {"repeat_penalty": repeat_penalty}
    out = llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0,
                                     **penalty)
    return str(out["choices"][0]["message"]["content"] or "")
