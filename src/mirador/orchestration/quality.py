"""The quality gate: catch a stage stuck in a loop, score each stage, pick the best answer.

Small models fall into repeated phrases ("it's about the journey, and it's
about the journey..."). While a stage streams, `LoopWatch` sees each piece and
reports a loop as soon as a word sequence comes round again too often; the
orchestrator then ends that stage early and keeps its text up to where the
loop began. When a stage ends, `score_stage` rates its text: similarity to the
question (MiniLM), repetition, and whether it merely echoes the question or
an earlier stage. `choose` then picks the answer: the latest sound stage, or,
when none is sound, the best-scoring one, and says why.

Scoring needs the embedder, which is slow next to a token: the orchestrator
runs it in a worker thread, never in front of the first token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mirador.errors import MiradorError

if TYPE_CHECKING:
    from mirador.embeddings import Embedder

log = logging.getLogger("mirador")

_WORD = re.compile(r"[\w']+")
_SENTENCE_END = re.compile(r"[.!?:;\n]\s")

# Chosen on the tuning half of bench/quality.py (see its README section).
LOOP_N = 4  # words in the sequence the watch follows
LOOP_REPEATS = 3  # a sequence seen this often is a loop
LONG_N = 8  # ...and a sequence this long seen twice is one too
ECHO_OVERLAP = 0.6  # share of an answer's word 4-grams found in the question / a stage
MIN_RELEVANCE = 0.25  # MiniLM cosine to the question below which an answer is off-topic
WORSE_BY = 0.12  # a later stage this much less relevant than an earlier sound one is set aside
COPY_OVERLAP = 0.6  # share of a stage's word 4-grams found in one earlier stage: a copy
COPY_MIN_WORDS = 20  # words a stage has said before the watch may call it a copy


@dataclass(frozen=True)
class Loop:
    """A repetition loop: the repeated words and where the repeating began in the text."""

    phrase: str
    start: int  # character offset of the loop's second occurrence

    def describe(self) -> str:
        return f"ended early: it fell into a repetition loop ('{self.phrase}' again and again)"


@dataclass
class LoopWatch:
    """Follows a stage's text as it streams and reports the first repetition loop."""

    text: str = ""
    _words: list[tuple[str, int]] = field(default_factory=list)
    _seen: dict[tuple[object, ...], list[int]] = field(default_factory=dict)
    _done_to: int = 0

    def feed(self, piece: str) -> Loop | None:
        """Add a streamed piece; a `Loop` when the text has started to repeat itself."""
        self.text += piece
        for match in _WORD.finditer(self.text, self._done_to):
            if match.end() == len(self.text):  # the word may still be growing
                break
            self._done_to = match.end()
            self._words.append((match.group().lower(), match.start()))
            loop = self._check()
            if loop is not None:
                return loop
        return None

    def _check(self) -> Loop | None:
        for n, limit in ((LOOP_N, LOOP_REPEATS), (LONG_N, 2)):
            if len(self._words) < n:
                continue
            window = self._words[-n:]
            gram = (n, *(word for word, _ in window))
            starts = self._seen.setdefault(gram, [])
            starts.append(window[0][1])
            if len(starts) >= limit:
                return Loop(phrase=" ".join(word for word, _ in window), start=starts[1])
        return None


@dataclass(frozen=True)
class Copy:
    """A stage that is saying again what an earlier stage said."""

    stage: str  # the earlier stage it copies
    share: float  # share of its word 4-grams found in that stage

    def describe(self) -> str:
        return f"ended early: it copies {self.stage} ({self.share:.0%} of its phrases)"


class CopyWatch:
    """Follows a stage's text as it streams and reports when it copies an earlier stage."""

    def __init__(self, earlier: Mapping[str, str]) -> None:
        self._earlier = {name: set(ngrams(text)) for name, text in earlier.items() if text}
        self.text = ""

    def feed(self, piece: str) -> Copy | None:
        """Add a streamed piece; a `Copy` once enough of the text repeats one earlier stage."""
        self.text += piece
        if not self._earlier:
            return None
        grams = ngrams(self.text)
        if len(grams) + 3 < COPY_MIN_WORDS:
            return None
        for name, theirs in self._earlier.items():
            share = sum(g in theirs for g in grams) / len(grams)
            if share >= COPY_OVERLAP:
                return Copy(name, round(share, 2))
        return None


def trim_loop(text: str, loop: Loop) -> str:
    """The text before the loop began, ending at a sentence boundary when there is one."""
    head = text[:loop.start]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= len(head) // 2:
        head = head[:ends[-1]]
    return head.strip()


@dataclass(frozen=True)
class StageQuality:
    """How good one stage's text looks, and what is wrong with it (`flags`, empty if sound)."""

    relevance: float | None  # cosine to the question; None when no embedder was at hand
    repetition: float  # share of word 4-grams that repeat an earlier one
    flags: tuple[str, ...] = ()

    @property
    def sound(self) -> bool:
        return not self.flags

    @property
    def score(self) -> float:
        return (self.relevance or 0.0) - self.repetition - 0.5 * len(self.flags)


def ngrams(text: str, n: int = 4) -> list[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def repetition(text: str) -> float:
    grams = ngrams(text)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def max_repeats(text: str, n: int = 4) -> int:
    """How often the most frequent word n-gram occurs."""
    counts = Counter(ngrams(text, n))
    return max(counts.values(), default=0)


def overlap(text: str, source: str) -> float:
    """Share of `text`'s word 4-grams that also occur in `source` (1.0: all copied)."""
    grams = ngrams(text)
    if not grams:
        words = [w.lower() for w in _WORD.findall(text)]
        return 1.0 if words and " ".join(words) in " ".join(_WORD.findall(source.lower())) else 0.0
    theirs = set(ngrams(source))
    return sum(g in theirs for g in grams) / len(grams)


def score_stage(question: str, text: str, earlier: Mapping[str, str],
                embedder: Embedder | None, loop: Loop | None = None) -> StageQuality:
    """Rate one stage's text against the question and the earlier stages' texts."""
    flags: list[str] = []
    if not text.strip():
        return StageQuality(relevance=None, repetition=0.0, flags=("empty",))
    if loop is not None:
        flags.append("looped")
    elif max_repeats(text) >= LOOP_REPEATS:
        flags.append("repetitive")
    if overlap(text, question) >= ECHO_OVERLAP:
        flags.append("echoes the question")
    flags += [f"copies {name}" for name, prior in earlier.items()
              if prior and overlap(text, prior) >= COPY_OVERLAP]
    relevance = _relevance(question, text, embedder)
    if relevance is not None and relevance < MIN_RELEVANCE:
        flags.append("off-topic")
    return StageQuality(relevance=relevance, repetition=round(repetition(text), 3),
                        flags=tuple(flags))


def _relevance(question: str, text: str, embedder: Embedder | None) -> float | None:
    if embedder is None:
        return None
    vectors = embedder.embed([question, text])
    return round(float(vectors[0] @ vectors[1]), 3)


@dataclass(frozen=True)
class Choice:
    """The stage whose text is the answer, and why."""

    stage: str
    reason: str
    set_aside: tuple[str, ...] = ()


def choose(order: Sequence[str], quality: Mapping[str, StageQuality],
           words: Mapping[str, int] | None = None,
           prefer: Literal["shorter", "longer"] | None = None) -> Choice:
    """The latest sound stage that is not clearly less relevant than an earlier one.

    A stage that copies an earlier one is not sound: it did not do its own job,
    and the stage it copies says the same first. With no sound stage, the
    best-scoring one is taken. With a length preference (`prefer`, from the plan:
    Model DNA's verbosity) and the stages' `words`, the longest (or shortest) of the
    sound stages that are not clearly less relevant is taken instead.
    """
    candidates = [name for name in order if name in quality]
    sound = [n for n in candidates if quality[n].sound]
    if not sound:
        best = max(candidates, key=lambda n: quality[n].score)
        return Choice(best, f"no stage was sound; {best} scored best",
                      tuple(n for n in candidates if n != best))
    best_relevance = max((quality[n].relevance or 0.0) for n in sound)
    fit = [n for n in reversed(sound) if (quality[n].relevance or 0.0) >= best_relevance - WORSE_BY]
    pick = fit[0]
    if prefer is not None and words is not None and len(fit) > 1:
        sign = 1 if prefer == "longer" else -1
        pick = max(fit, key=lambda n: sign * words.get(n, 0))  # ties: the latest
        if pick != fit[0]:
            aside = tuple(n for n in candidates if n != pick)
            return Choice(pick, f"{pick} chosen: the {prefer} sound answer "
                                f"({words.get(pick, 0)} words; the plan prefers {prefer})", aside)
    aside = tuple(n for n in candidates[candidates.index(pick) + 1:])
    return Choice(pick, _reason(pick, aside, quality), aside)


def _reason(pick: str, aside: Sequence[str], quality: Mapping[str, StageQuality]) -> str:
    if not aside:
        return f"{pick} is the last stage and sound"
    why = "; ".join(f"{n}: {', '.join(quality[n].flags) or 'less relevant'}" for n in aside)
    return f"{pick} chosen; set aside {why}"


class Judge:
    """Scores an answer's stages in worker threads as they end; picks the answer at the end.

    The embedder is only asked to load once the first token has streamed (`begin`),
    and only when there is a choice to make (more than one stage).
    """

    def __init__(self, question: str, embedder: Embedder | None, stages: int,
                 prefer: Literal["shorter", "longer"] | None = None) -> None:
        self.question = question
        self.embedder = embedder if stages > 1 else None
        self.prefer = prefer  # the answer length the plan favours (Model DNA's verbosity)
        self._tasks: dict[str, asyncio.Task[StageQuality]] = {}
        self._texts: dict[str, str] = {}

    def begin(self) -> None:
        """The first token is out: the embedder may start loading in the background."""
        from mirador.embeddings import BackgroundEmbedder

        if isinstance(self.embedder, BackgroundEmbedder):
            self.embedder.start()

    def stage_ended(self, name: str, text: str, loop: Loop | None) -> None:
        """Start scoring `text` off the event loop; the next stage does not wait for it."""
        earlier = dict(self._texts)
        self._texts[name] = text
        self._tasks[name] = asyncio.ensure_future(asyncio.to_thread(
            self._score, text, earlier, loop))

    def _score(self, text: str, earlier: dict[str, str], loop: Loop | None) -> StageQuality:
        try:
            return score_stage(self.question, text, earlier, self.embedder, loop)
        except MiradorError as exc:  # no embedder: judge by the text alone
            log.warning("answers are judged without relevance: %s", exc)
            self.embedder = None
            return score_stage(self.question, text, earlier, None, loop)

    async def verdict(self, candidates: Sequence[str]
                      ) -> tuple[Choice | None, dict[str, StageQuality]]:
        """Every stage's quality, and the choice among `candidates` (in stage order)."""
        quality = {name: await task for name, task in self._tasks.items()}
        scored = [name for name in candidates if name in quality]
        words = {name: len(_WORD.findall(text)) for name, text in self._texts.items()}
        return (choose(scored, quality, words, self.prefer) if scored else None), quality

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
