"""The progressive orchestrator: real SmolLM2 for the happy path, scripted faults for the rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mirador.backends.llamacpp import LlamaCppBackend
from mirador.backends.scripted import Script, ScriptedBackend
from mirador.orchestration import prompts
from mirador.orchestration.events import Ack, Done, ErrorEvent, Event, StageEnd, StageStart, Token
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.quality import COPY_OVERLAP, overlap
from mirador.orchestration.stages import ModelStage
from mirador.settings import Settings
from tests.support.spy import SpyBackend

SHORT = [ModelStage("quick_response", "quick", 0.6, timeout=60, max_tokens=12),
         ModelStage("deep_analysis", "analyst", 0.85, timeout=60, max_tokens=12),
         ModelStage("synthesis", "synthesizer", 0.95, timeout=60, max_tokens=12)]


async def run(orchestrator: Orchestrator, query: str | Query, **kwargs: object) -> list[Event]:
    return [event async for event in orchestrator.process(query, **kwargs)]  # type: ignore[arg-type]


@pytest.fixture
def spy(llama_backend: LlamaCppBackend) -> SpyBackend:
    return SpyBackend(llama_backend)


@pytest.fixture
async def real(settings: Settings, spy: SpyBackend) -> AsyncIterator[Orchestrator]:
    orchestrator = Orchestrator(settings)
    orchestrator.manager.use_backend("llamacpp", spy)  # type: ignore[arg-type]
    yield orchestrator
    await orchestrator.aclose()


@pytest.fixture
async def scripted(settings: Settings) -> AsyncIterator[tuple[Orchestrator, ScriptedBackend]]:
    backend = ScriptedBackend()
    orchestrator = Orchestrator(settings)
    orchestrator.manager.use_backend("llamacpp", backend)
    yield orchestrator, backend
    await orchestrator.aclose()


async def test_staged_answer_from_the_real_model(real: Orchestrator) -> None:
    events = await run(real, "What should I focus on today?", stages=SHORT)
    assert isinstance(events[0], Ack) and events[0].stages == [s.name for s in SHORT]
    assert isinstance(events[-1], Done) and events[-1].status == "ok"
    starts = [e for e in events if isinstance(e, StageStart)]
    ends = [e for e in events if isinstance(e, StageEnd)]
    assert [s.stage for s in starts] == [e.stage for e in ends] == [s.name for s in SHORT]
    for stage in SHORT:
        tokens = [e for e in events if isinstance(e, Token) and e.stage == stage.name]
        assert tokens, f"{stage.name} produced no tokens"
        assert {t.confidence for t in tokens} == {stage.confidence}
        assert {t.model for t in tokens} == {"smollm2-135m"}
        end = next(e for e in ends if e.stage == stage.name)
        assert end.status == "ok" and end.tokens == len(tokens) and end.ttft is not None
        assert events[-1].answers[stage.name].text == "".join(t.text for t in tokens).strip()
    # the stream is progressive: each stage's tokens come between its start and its end
    order = [(e.type, getattr(e, "stage", None)) for e in events]
    assert order.index(("stage_end", "quick_response")) < order.index(
        ("stage_start", "deep_analysis"))
    done = events[-1]
    assert done.final_stage in done.answers and done.ttft is not None
    assert done.answer == done.answers[done.final_stage].text and done.chosen_because
    assert set(done.quality) == {s.name for s in SHORT}
    for scores in done.quality.values():  # judged with the real MiniLM
        assert scores["relevance"] is not None and -1.0 <= scores["relevance"] <= 1.0


async def test_later_stages_see_the_query_and_what_they_are_shown(real: Orchestrator,
                                                                  spy: SpyBackend) -> None:
    events = await run(real, "How can I sleep better?", stages=SHORT)
    done = events[-1]
    assert isinstance(done, Done)
    first, second, third = (r.messages for r in spy.requests[-3:])
    assert first[-1].content == "How can I sleep better?"
    # deep_analysis is not shown the first answer (it would copy it): it is asked its own
    # question about the query
    quick = done.answers["quick_response"].text
    assert [m.role for m in second] == ["system", "user"]
    assert second[-1].content == ("How can I sleep better?\n\n"
                                  + prompts.STAGE_REQUESTS["deep_analysis"])
    assert all(quick not in m.content for m in second)
    # synthesis gets deep_analysis's points as notes, then the question itself
    assert [m.role for m in third] == ["system", "user"]
    assert third[0].content.startswith("You are Mirador")  # its persona
    assert f"{prompts.NOTES_HEADING}\n{done.answers['deep_analysis'].text}" in third[0].content
    assert third[-1].content == "How can I sleep better?"


@pytest.mark.parametrize("question", ["Should I buy a used car or keep taking the bus?",
                                      "How can I save money on groceries?"])
async def test_real_stages_do_not_pass_off_a_copy_as_their_own(real: Orchestrator,
                                                                 question: str) -> None:
    """Every stage kept in the answer says something the earlier stages did not; one that
    began to copy was ended with a reason and set aside, never chosen."""
    events = await run(real, question, stages=["quick_response", "deep_analysis", "synthesis"])
    done = events[-1]
    assert isinstance(done, Done) and done.status == "ok"
    reasons = {e.stage: e.reason or "" for e in events if isinstance(e, StageEnd)}
    texts = {name: a.text for name, a in done.answers.items()}
    names = list(texts)
    for i, name in enumerate(names[1:], 1):
        copied = [p for p in names[:i] if overlap(texts[name], texts[p]) >= COPY_OVERLAP]
        if copied:
            assert any(f"copies {p}" in done.quality[name]["flags"] for p in copied)
            assert name in done.set_aside or name != done.final_stage, reasons[name]
    final = done.final_stage
    assert final is not None and not any(
        overlap(done.answer, texts[p]) >= COPY_OVERLAP for p in names[:names.index(final)])


async def test_routing_decides_the_stages(real: Orchestrator) -> None:
    assert [s.name for s in real.plan("What is the capital of Portugal?").stages] == [
        "quick_response"]
    assert [s.name for s in real.plan("How should I structure a weekly review?").stages] == [
        "quick_response", "synthesis"]
    complex_query = ("Analyze the pros and cons of moving my family abroad, considering "
                     "schools, cost of living and career options")
    assert [s.name for s in real.plan(complex_query).stages] == [
        "quick_response", "deep_analysis", "synthesis"]
    assert [s.name for s in real.plan("anything", stages=["synthesis"]).stages] == ["synthesis"]


async def test_a_chain_runs_its_personas_as_stages(real: Orchestrator) -> None:
    plan = real.plan("Should I take the job?", chain="rapid_decision")
    assert [s.persona for s in plan.stages] == ["quick", "decision_simplifier"]
    assert plan.stages[0].confidence == 0.6 and plan.stages[-1].confidence == 0.95


async def test_stopping_early_stops_the_model(real: Orchestrator, spy: SpyBackend) -> None:
    stream = real.process("Tell me a long story about the sea.",
                          stages=[ModelStage("quick_response", "quick", 0.6, timeout=60,
                                             max_tokens=300)])
    tokens = 0
    async for event in stream:
        tokens += isinstance(event, Token)
        if tokens == 2:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    loaded = spy.real._models["smollm2-135m"]
    assert not loaded.lock.locked(), "the model is still busy after the consumer left"
    events = await run(real, "Hi", stages=SHORT[:1])
    assert events[-1].status == "ok"  # type: ignore[union-attr]


async def test_first_stage_model_loads_while_the_acknowledgement_shows(
        settings: Settings) -> None:
    orchestrator = Orchestrator(settings)
    stream = orchestrator.process("Hi", stages=SHORT[:1])
    ack = await anext(stream)
    assert isinstance(ack, Ack)
    for _ in range(200):  # no further event is pulled: the load must be under way by itself
        if [m.model_id for m in await orchestrator.manager.ps()] == ["smollm2-135m"]:
            break
        await asyncio.sleep(0.05)
    assert [m.model_id for m in await orchestrator.manager.ps()] == ["smollm2-135m"]
    await stream.aclose()  # type: ignore[attr-defined]
    await orchestrator.aclose()


async def test_a_hanging_stage_times_out_and_the_answer_goes_on(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=["never"], hang_after=0),
                    Script(pieces=["Final", " answer"]))
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=5, first_token_timeout=0.2),
              ModelStage("synthesis", "synthesizer", 0.95, timeout=5)]
    events = await run(orchestrator, "q", stages=stages)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [(e.stage, e.status) for e in errors] == [("quick_response", "timeout")]
    assert "first token" in errors[0].message
    done = events[-1]
    assert isinstance(done, Done)
    assert done.status == "partial" and done.answer == "Final answer"
    assert done.answers["quick_response"].status == "timeout"
    assert backend.closed_streams == 2


async def test_a_stage_that_fails_mid_stream_keeps_its_partial_text(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=["Half", " a", " thought", "!"], fail_after=2,
                           error="backend died"),
                    Script(pieces=["Whole", " answer"]))
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=5),
              ModelStage("action_planner", "action_planner", 0.95, timeout=5)]
    events = await run(orchestrator, "q", stages=stages)
    error = next(e for e in events if isinstance(e, ErrorEvent))
    assert error.status == "error" and "backend died" in error.message
    end = next(e for e in events if isinstance(e, StageEnd) and e.stage == "quick_response")
    assert end.partial and end.status == "error" and end.tokens == 2
    done = events[-1]
    assert isinstance(done, Done)
    assert done.answers["quick_response"].text == "Half a"
    assert done.answers["quick_response"].partial
    later = backend.requests[1].messages
    assert later[-2].content == "Half a" and "cut short" in later[-1].content


async def test_a_stage_over_its_total_time_is_cut_and_kept(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=["one", " two", " three", " four"], delay=0.3))
    stage = ModelStage("quick_response", "quick", 0.6, timeout=0.5)
    events = await run(orchestrator, "q", stages=[stage])
    done = events[-1]
    assert isinstance(done, Done)
    assert done.status == "partial"
    assert done.answer.startswith("one") and "four" not in done.answer
    assert "whole stage" in next(e for e in events if isinstance(e, ErrorEvent)).message


async def test_when_every_stage_fails_the_result_says_why(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=["x"], fail_after=0, error="out of memory"),
                    Script(pieces=["y"], fail_after=0, error="server gone"))
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=5),
              ModelStage("synthesis", "synthesizer", 0.95, timeout=5)]
    done = (await run(orchestrator, "q", stages=stages))[-1]
    assert isinstance(done, Done) and done.status == "error" and done.answer == ""
    assert done.error is not None
    assert "out of memory" in done.error and "server gone" in done.error
    assert "every stage failed" in done.error


async def test_custom_stages_are_plain_data(scripted: tuple[Orchestrator, ScriptedBackend]
                                            ) -> None:
    orchestrator, backend = scripted
    backend.enqueue(Script(pieces=["a"]), Script(pieces=["b"]))
    stages = [ModelStage("draft", "quick", 0.5, timeout=5, temperature=0.1),
              ModelStage("polish", "synthesizer", 0.9, timeout=5, system_prompt="Be terse.")]
    events = await run(orchestrator, "q", stages=stages)
    assert [e.stage for e in events if isinstance(e, StageStart)] == ["draft", "polish"]
    assert backend.requests[0].options.temperature == 0.1
    assert backend.requests[1].messages[0].content == "Be terse."


LOOP = ["Plan", " the", " day.", " Rest", " well", " and", " rest", " well", " and", " rest",
        " well", " and", " rest", " well", " and", " rest", " well", " and", " more", " more"]


async def test_a_looping_stage_ends_early_and_is_set_aside(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    answer = "Write down the three tasks that matter most today and start with the hardest."
    backend.enqueue(Script(pieces=[w + " " for w in answer.split()]), Script(pieces=LOOP))
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=30),
              ModelStage("synthesis", "synthesizer", 0.95, timeout=30)]
    events = await run(orchestrator, "What should I focus on today?", stages=stages)
    end = next(e for e in events if isinstance(e, StageEnd) and e.stage == "synthesis")
    assert end.status == "ok" and end.reason and "repetition loop" in end.reason
    assert end.tokens < len(LOOP), "the stage was ended while it looped"
    assert backend.closed_streams == 2
    done = events[-1]
    assert isinstance(done, Done)
    assert done.answers["synthesis"].text == "Plan the day."  # kept up to the loop
    assert done.final_stage == "quick_response" and done.answer == answer
    assert done.set_aside == ["synthesis"] and "looped" in done.quality["synthesis"]["flags"]
    assert "set aside synthesis" in (done.chosen_because or "")


async def test_a_stage_that_copies_an_earlier_one_is_ended_and_set_aside(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    first = ("Keep taking the bus for now: a used car costs insurance, repairs and parking on "
             "top of its price, while a monthly pass is a fixed cost you already know.")
    analysis = ("- Insurance for a young driver can cost more than the car.\n- Count what a "
                "breakdown would cost you.\n- Think about trips the bus does not cover.")
    words = [w + " " for w in first.split()]
    backend.enqueue(Script(pieces=words), Script(pieces=words + ["And", " more."]),
                    Script(pieces=[w + " " for w in analysis.split(" ")]))
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=30),
              ModelStage("deep_analysis", "analyst", 0.85, timeout=30),
              ModelStage("synthesis", "synthesizer", 0.95, timeout=30)]
    events = await run(orchestrator, "Should I buy a used car or keep taking the bus?",
                       stages=stages)
    end = next(e for e in events if isinstance(e, StageEnd) and e.stage == "deep_analysis")
    assert end.status == "ok" and end.reason and "copies quick_response" in end.reason
    assert end.tokens < len(words), "the copy was ended while it streamed"
    done = events[-1]
    assert isinstance(done, Done)
    assert "copies quick_response" in done.quality["deep_analysis"]["flags"]
    assert done.final_stage != "deep_analysis"
    # the copy is not shown to the synthesis as if it were a second opinion
    synthesis = backend.requests[-1].messages
    assert [m.role for m in synthesis] == ["system", "user"]
    assert prompts.NOTES_HEADING not in synthesis[0].content


async def test_a_copying_last_stage_leaves_the_answer_to_the_one_it_copies(
        scripted: tuple[Orchestrator, ScriptedBackend]) -> None:
    orchestrator, backend = scripted
    first = ("Write down the three tasks that matter most today, start with the hardest one "
             "before lunch and leave email for the afternoon when your energy is lower.")
    words = [w + " " for w in first.split()]
    backend.enqueue(Script(pieces=words), Script(pieces=words))
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=30),
              ModelStage("synthesis", "synthesizer", 0.95, timeout=30)]
    done = (await run(orchestrator, "What should I focus on today?", stages=stages))[-1]
    assert isinstance(done, Done)
    assert done.final_stage == "quick_response" and done.answer == first
    assert done.set_aside == ["synthesis"] and "copies quick_response" in (
        done.chosen_because or "")


async def test_the_embedder_loads_only_after_the_first_token(
        settings: Settings) -> None:
    from mirador.embeddings import BackgroundEmbedder
    from mirador.embeddings.minilm import MiniLMEmbedder

    built: list[str] = []
    embedder = BackgroundEmbedder(lambda: built.append("built") or MiniLMEmbedder.load(),
                                  start=False)
    backend = ScriptedBackend()
    backend.enqueue(Script(pieces=["Sleep", " at", " ten."]), Script(pieces=["Sleep", " early."]))
    orchestrator = Orchestrator(settings, embedder=embedder)
    orchestrator.manager.use_backend("llamacpp", backend)
    stages = [ModelStage("quick_response", "quick", 0.6, timeout=30),
              ModelStage("synthesis", "synthesizer", 0.95, timeout=30)]
    seen_before_first_token = None
    async for event in orchestrator.process("How can I sleep better?", stages=stages):
        if isinstance(event, Token) and seen_before_first_token is None:
            seen_before_first_token = list(built)
        if isinstance(event, Done):
            assert event.quality["synthesis"]["relevance"] is not None
    await orchestrator.aclose()
    assert seen_before_first_token == [] and built == ["built"]
