"""Several requests at once on one loaded llama.cpp model: one context, several sequences.

llama-cpp-python's high-level `Llama` decodes one sequence per context. llama.cpp itself
decodes several in one batch (llama-server's "slots"), and on this 2-core machine that pays
(bench/slots.py, bench/load.py). With `backends.llamacpp.sequences` S > 1, a loaded chat
model gets a `BatchEngine` beside its `Llama`: a second context on the same weights with
`n_seq_max` = S and S x n_ctx cells (not unified: each sequence has n_ctx of its own, the
same window a request gets one at a time), and one worker thread that owns it. Each step
it decodes one token of every active sequence in a single `llama_decode`; a request that
joins has its prompt read first, alone, in batches of n_batch; a finished or cancelled
sequence's cells are cleared (`llama_memory_seq_rm`) and its slot freed.

Each sequence samples with its own llama.cpp sampler chain, built exactly as
`Llama._init_sampler` builds one for `create_completion` (penalties, grammar, then greedy
or top-k, typical, top-p, min-p, temperature, seeded dist) from the same keyword arguments
(`_completion_kwargs`), so temperature, top_p, top_k, repeat_penalty, seed, stop strings,
max_tokens and `format` mean what they mean one at a time. Text is cut at the earliest stop
string and a possible stop's beginning is held back until it is decided, as
`create_completion` does. Without a seed, each request's seed follows from the last one's,
as `create_completion` does.

Greedy tokens match one at a time except where batched float sums tip a near-tie (bench/
slots.py found the first 16 tokens of every sequence identical).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mirador.backends.base import Finished, TextPiece
from mirador.errors import ModelLoadError

log = logging.getLogger("mirador.llamacpp")
DONE = object()
"""The last item a job's `emit` receives: its sequence is freed."""


@dataclass
class Job:
    """One request for the engine: prompt tokens and `create_completion`-style kwargs."""

    tokens: list[int]
    kwargs: dict[str, Any]  # temperature, top_p, top_k, repeat_penalty, seed, max_tokens, stop
    cancel: threading.Event
    emit: Callable[[Any], None]  # TextPiece, Finished, an exception, then DONE


@dataclass
class _Sequence:
    """A job while it holds a sequence id (engine thread only)."""

    job: Job
    seq: int
    sampler: Any
    max_tokens: int
    stops: tuple[bytes, ...]
    started: float
    out: list[int] = field(default_factory=list)
    sampled: int = 0  # tokens sampled, the end-of-generation one included
    sent: int = 0  # bytes of text emitted
    first: float | None = None

    @property
    def position(self) -> int:
        return len(self.job.tokens) + len(self.out) - 1


class BatchEngine:
    """A context with `sequences` sequences on `llm`'s weights, and the thread that runs it."""

    def __init__(self, llm: Any, sequences: int, threads: int, n_ctx: int) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        # The `Llama` context's own parameters (flash attention, batch sizes, ...), so a
        # sequence computes what the same request computes one at a time.
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx * sequences, sequences, False
        params.n_threads = params.n_threads_batch = threads
        self._llm, self._n_ctx, self.sequences = llm, n_ctx, sequences
        self._ctx = internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._batch = internals.LlamaBatch(n_tokens=max(llm.n_batch, sequences), embd=0,
                                           n_seq_max=1, verbose=False)
        self._seed = llama_cpp.LLAMA_DEFAULT_SEED
        self._pending: deque[Job] = deque()
        self._free = list(range(sequences))
        self._active: dict[int, _Sequence] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        """Queue `job`; it joins the batch at the next step with a free sequence."""
        with self._wake:
            if self._closed:
                raise ModelLoadError("the model was unloaded while this request started; "
                                     "send it again")
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="mirador-llamacpp-batch")
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        """Cancel every job, stop the thread, free the context (before the model)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        self._ctx.close()
        self._batch.close()

    # -- the engine thread ---------------------------------------------------------

    def _run(self) -> None:
        while (joining := self._next()) is not None:
            for job in joining:
                self._join(job)
            if self._active:
                self._step()
        for job in self._pending:
            _end(job, None)
        for state in list(self._active.values()):
            self._finish(state, "cancelled")

    def _next(self) -> list[Job] | None:
        """Jobs to join now (waiting while there is nothing to do); None once closed."""
        with self._wake:
            while not self._closed and not self._pending and not self._active:
                self._wake.wait()
            if self._closed:
                return None
            count = min(len(self._free), len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _join(self, job: Job) -> None:
        """Read `job`'s prompt into a free sequence and sample its first token."""
        if job.cancel.is_set():
            _end(job, Finished(reason="cancelled", prompt_tokens=len(job.tokens)))
            return
        try:
            sampler = self._sampler(job.kwargs)
        except Exception as exc:  # handed to the request's stream, which raises it there
            _end(job, exc)
            return
        state = _Sequence(job=job, seq=self._free.pop(), sampler=sampler,
                          max_tokens=self._max_tokens(job), started=time.perf_counter(),
                          stops=tuple(s.encode("utf-8") for s in job.kwargs["stop"] if s))
        self._active[state.seq] = state
        try:
            last = self._prefill(job.tokens, state.seq)
            self._take(state, state.sampler.sample(self._ctx, last))
        except Exception as exc:
            self._fail(state, exc)

    def _prefill(self, tokens: list[int], seq: int) -> int:
        """Evaluate `tokens` into `seq`, n_batch at a time; the batch index of the last."""
        size = self._llm.n_batch
        for start in range(0, len(tokens), size):
            chunk = tokens[start:start + size]
            self._decode([(token, start + i, seq) for i, token in enumerate(chunk)],
                         every_logit=False)
        return (len(tokens) - 1) % size

    def _step(self) -> None:
        """One token for every active sequence, in one decode."""
        for state in list(self._active.values()):
            if state.job.cancel.is_set():
                self._finish(state, "cancelled")
        states = list(self._active.values())
        if not states:
            return
        try:
            self._decode([(s.out[-1], s.position, s.seq) for s in states], every_logit=True)
        except Exception as exc:  # the whole batch failed: every sequence in it ends
            for state in states:
                self._fail(state, exc)
            return
        for index, state in enumerate(states):
            try:
                self._take(state, state.sampler.sample(self._ctx, index))
            except Exception as exc:  # this sequence ends; the others go on
                self._fail(state, exc)

    def _decode(self, items: list[tuple[int, int, int]], every_logit: bool) -> None:
        batch = self._batch.batch
        batch.n_tokens = len(items)
        for i, (token, pos, seq) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, every_logit
        batch.logits[len(items) - 1] = True
        self._ctx.decode(self._batch)

    def _take(self, state: _Sequence, token: int) -> None:
        """Handle a sampled token: text out, and the sequence's end if it ends here."""
        import llama_cpp

        state.sampled += 1
        state.first = state.first or time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token):
            self._emit_text(state, self._text(state), final=True)
            self._finish(state, "stop")
            return
        state.out.append(token)
        text = self._text(state)
        cut = _first_stop(text, state.stops)
        if cut is not None:
            self._emit_text(state, text[:cut], final=True)
            self._finish(state, "stop")
        elif len(state.out) >= state.max_tokens:
            self._emit_text(state, text, final=True)
            self._finish(state, "length")
        else:
            self._emit_text(state, text, final=False)

    def _text(self, state: _Sequence) -> bytes:
        return bytes(self._llm.detokenize(state.out, prev_tokens=state.job.tokens))

    def _emit_text(self, state: _Sequence, text: bytes, final: bool) -> None:
        """Send what is decided of `text`: all of it when `final`; else up to a possible
        stop's beginning or an unfinished UTF-8 character."""
        end = len(text) if final else _decided(text, state.stops)
        if end > state.sent:
            piece = text[state.sent:end].decode("utf-8", errors="ignore")
            state.sent = end
            if piece:
                state.job.emit(TextPiece(piece))

    def _finish(self, state: _Sequence, reason: Any) -> None:
        now = time.perf_counter()
        first = state.first or now
        self._release(state)
        _end(state.job, Finished(
            reason=reason, prompt_tokens=len(state.job.tokens), completion_tokens=state.sampled,
            timings={"seconds": now - state.started, "prompt_seconds": first - state.started,
                     "eval_seconds": now - first}))

    def _fail(self, state: _Sequence, exc: BaseException) -> None:
        if state.seq in self._active:
            self._release(state)
        _end(state.job, exc)

    def _release(self, state: _Sequence) -> None:
        """Clear the sequence's cells and free its id."""
        self._active.pop(state.seq, None)
        self._ctx.kv_cache_seq_rm(state.seq, -1, -1)
        self._free.append(state.seq)
        state.sampler.close()

    def _max_tokens(self, job: Job) -> int:
        """As `create_completion`: the request's, within what the context leaves."""
        room = self._n_ctx - len(job.tokens)
        wanted = job.kwargs.get("max_tokens") or room
        return wanted if 0 < wanted < room else room

    def _sampler(self, kwargs: dict[str, Any]) -> Any:
        """The chain `Llama._init_sampler` builds for these `create_completion` kwargs."""
        seed = kwargs.get("seed")
        if seed is None:  # as create_completion: each unseeded request's seed from the last
            seed = self._seed = random.Random(self._seed).randint(0, 2**32)
        return sampler_chain(self._llm, kwargs, seed)


def sampler_chain(llm: Any, kwargs: dict[str, Any], seed: int) -> Any:
    """A sampler chain as `Llama._init_sampler` makes it, with `create_completion`'s
    defaults for what `kwargs` leaves out (min_p 0.05, typical_p 1, no frequency or
    presence penalty)."""
    from llama_cpp import _internals as internals

    temp = kwargs.get("temperature", 0.8)
    sampler = internals.LlamaSampler()
    sampler.add_penalties(n_vocab=llm.n_vocab(), penalty_last_n=llm.last_n_tokens_size,
                          penalty_repeat=kwargs.get("repeat_penalty", 1.0),
                          penalty_freq=0.0, penalty_present=0.0)
    if kwargs.get("grammar") is not None:
        sampler.add_grammar(llm._model, kwargs["grammar"])
    if temp < 0.0:
        sampler.add_dist(seed)
    elif temp == 0.0:
        sampler.add_greedy()
    else:
        sampler.add_top_k(kwargs.get("top_k", 40))
        sampler.add_typical(1.0, 1)
        sampler.add_top_p(kwargs.get("top_p", 0.95), 1)
        sampler.add_min_p(0.05, 1)
        sampler.add_temp(temp)
        sampler.add_dist(seed)
    return sampler


def _end(job: Job, last: Any) -> None:
    if last is not None:
        job.emit(last)
    job.emit(DONE)


def _first_stop(text: bytes, stops: tuple[bytes, ...]) -> int | None:
    """Where the earliest stop string in `text` begins, if any does."""
    found = [text.index(stop) for stop in stops if stop in text]
    return min(found) if found else None


def _decided(text: bytes, stops: tuple[bytes, ...]) -> int:
    """How much of `text` can go out: not a tail that may begin a stop string, nor an
    unfinished UTF-8 character."""
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:size]):
                hold = size
                break
    end = len(text) - hold
    return end - _unfinished(text[:end])


def _unfinished(text: bytes) -> int:
    """Bytes at the end of `text` that begin a UTF-8 character not yet complete."""
    for back in range(1, min(4, len(text)) + 1):
        byte = text[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): how long is its character?
            need = 1 if byte < 0x80 else 2 if byte >= 0xC0 and byte < 0xE0 else (
                3 if byte < 0xF0 else 4)
            return back if need > back else 0
    return 0
