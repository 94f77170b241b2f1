"""The context compiler: a token budget counted by the model's own tokenizer, kept by
relevance, the rest summarised by the quick model, and never a sentence cut in half."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.catalog.manifest import ModelEntry
from mirador.memory.context import (
    ContextCompiler,
    Item,
    items_for,
    render,
    sentences,
    told_facts,
)
from mirador.memory.records import Recalled
from mirador.orchestration.orchestrator import Orchestrator
from mirador.settings import Settings
from mirador.text_tokens import estimate_tokens
from tests.memory.conftest import rec


async def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
async def orchestrator(settings: Settings, llama_backend: LlamaCppBackend
                       ) -> AsyncIterator[Orchestrator]:
    orchestrator = Orchestrator(settings)
    orchestrator.manager.use_backend("llamacpp", llama_backend)
    yield orchestrator
    await orchestrator.aclose()


async def test_tokens_are_counted_by_the_models_own_tokenizer(
        orchestrator: Orchestrator, llama_backend: LlamaCppBackend,
        smollm_entry: ModelEntry) -> None:
    text = "Mirador remembers that Ana starts kindergarten in September."
    counted = await orchestrator.manager.count_tokens(smollm_entry, text)
    loaded = await llama_backend._get(smollm_entry)
    assert counted == len(loaded.llm.tokenize(text.encode(), add_bos=False, special=False))
    assert counted != estimate_tokens(text) or counted == len(text) // 4 + 1  # a real count
    remote = ModelEntry(id="r", backend="openai", name="x")
    assert await orchestrator.manager.count_tokens(remote, "abcdefgh") == 2  # the estimate


async def test_keeps_by_relevance_within_the_budget() -> None:
    items = [Item(0.2, "memory", "- low relevance line here."),
             Item(0.9, "memory", "- high relevance line here."),
             Item(0.5, "preference", "- middle relevance line here.")]
    compiled = await ContextCompiler(budget=24, count_tokens=words).compile(items)
    assert [i.relevance for i in compiled.kept] == [0.9, 0.5]
    assert [i.relevance for i in compiled.summarised] == [0.2]
    assert compiled.tokens <= 24 and "low relevance" not in compiled.text
    assert compiled.text.index("What they have told you") < compiled.text.index("Earlier conv")


async def test_overflow_is_summarised_into_the_room_left_in_whole_sentences() -> None:
    seen: list[tuple[str, int]] = []

    async def summarise(notes: str, room: int) -> str:
        seen.append((notes, room))
        return "They like tea. They walk daily. And then they also went on and on"

    items = [Item(0.9, "memory", "- first memory, kept in full."),
             Item(0.5, "memory", "- second memory, much too long " + "words " * 40 + ".")]
    compiled = await ContextCompiler(40, words, summarise).compile(items)
    assert seen and "second memory" in seen[0][0] and "first memory" not in seen[0][0]
    assert seen[0][1] >= 12  # a quarter of the budget was kept for the summary
    assert [i.text for i in compiled.kept][0] == "- first memory, kept in full."
    summary = compiled.kept[-1]
    assert summary.section == "summary" and summary.text == "They like tea. They walk daily."
    assert compiled.tokens <= 40


async def test_nothing_fits_means_nothing_not_half_a_sentence() -> None:
    compiled = await ContextCompiler(3, words).compile(
        [Item(1.0, "memory", "- a memory that is far longer than three words.")])
    assert compiled.text == "" and compiled.tokens == 0 and len(compiled.summarised) == 1


async def test_fit_stops_between_sentences() -> None:
    compiler = ContextCompiler(8, words)
    assert await compiler.fit("One two three. Four five six. Seven eight nine.", 7) == \
        "One two three. Four five six."
    assert await compiler.fit("No full stop here", 10) == ""


def test_items_show_each_memory_once_latest_turn_first() -> None:
    turn = rec("t1", "What about lunch?", "Try soup. It is warm. And cheap.")
    hit = Recalled(record=rec("m1", "I'm allergic to peanuts."), score=0.7, similarity=0.7,
                   decay=1.0)
    duplicate = Recalled(record=turn, score=0.9, similarity=0.9, decay=1.0)
    items = items_for([hit, duplicate], [hit], [turn])
    assert [(i.section, i.memory_id) for i in items] == [("turn", "t1"), ("memory", "m1")]
    assert "And cheap" not in render(items)  # two whole sentences of a remembered answer
    assert sentences("A b. C d? E") == ["A b.", "C d?", "E"]


def hit(record_id: str, query: str, response: str = "Noted.", days_ago: float = 1.0,
        score: float = 0.8) -> Recalled:
    return Recalled(record=rec(record_id, query, response, days_ago=days_ago), score=score,
                    similarity=score, decay=1.0)


def test_what_the_person_told_is_shown_in_their_words_without_the_reply() -> None:
    told = hit("m1", "My dentist appointment is on Tuesday at 3pm.", "A nice reminder!")
    asked = hit("m2", "How do I floss well?", "Use a fresh length each time. Be gentle.")
    text = render(items_for([told, asked], [], []))
    assert 'I told you: "My dentist appointment is on Tuesday at 3pm."' in text
    assert "A nice reminder" not in text
    assert 'I asked "How do I floss well?". You answered: Use a fresh length' in text


def test_an_earlier_asking_of_the_same_question_is_left_out() -> None:
    again = hit("m3", "When is my dentist appointment?", "I cannot know that.")
    told = hit("m1", "My dentist appointment is on Tuesday at 3pm.")
    items = items_for([again, told], [], [], "when is my  dentist appointment")
    assert [i.memory_id for i in items] == ["m1"]


async def test_told_facts_are_those_kept_oldest_first() -> None:
    old = hit("m1", "My dentist appointment is on Tuesday at 3pm.", days_ago=9.0, score=0.7)
    new = hit("m2", "I moved my dentist appointment to Wednesday at 4pm.", days_ago=2.0)
    asked = hit("m3", "How do I floss well?", score=0.9)
    hits = [asked, new, old]
    compiled = await ContextCompiler(600, words).compile(items_for(hits, [], []))
    assert told_facts(hits, compiled) == (old.record.query, new.record.query)
    asked_to_keep = hit("m4", "My locker code is 4471. Please remember it.", score=0.9)
    kept = await ContextCompiler(600, words).compile(items_for([asked_to_keep], [], []))
    assert told_facts([asked_to_keep], kept) == ("My locker code is 4471.",)
    cramped = await ContextCompiler(12, words).compile(items_for(hits, [], []))
    assert told_facts(hits, cramped) == ()  # only what went into the context
