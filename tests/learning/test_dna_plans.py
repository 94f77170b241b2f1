"""Model DNA decides which routed stages run (technical depth) and which answer length the
judge favours (verbosity), on the real orchestrator with the real SmolLM2; `mirador why`
shows what it did to the plan; the person's own `--stages` and `--chain` are never touched."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from mirador.learning import Learner, LearningStore
from mirador.learning.dna import DNA, staged
from mirador.learning.explain import render
from mirador.learning.personal import PersonalShaper
from mirador.learning.querytypes import QueryClassifier
from mirador.orchestration.events import Ack, Done, Event
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.quality import WORSE_BY, StageQuality, choose
from mirador.settings import load_settings

SIMPLE = "What is the capital of France?"
MEDIUM = "Compare renting and buying a home for a young family."
COMPLEX = ("Analyze the trade-offs between microservices and a monolith for a startup, "
           "considering cost, team size and scaling, and recommend a strategy step by step.")
FULL = ["quick_response", "deep_analysis", "synthesis"]
# the default stages, short: each stage says a sentence or two
CONFIG = """\
memory: {enabled: false}
stages:
  - {name: quick_response, persona: quick, confidence: 0.6, max_tokens: 40}
  - {name: deep_analysis, persona: analyst, confidence: 0.85, max_tokens: 40}
  - {name: synthesis, persona: synthesizer, confidence: 0.95, max_tokens: 40}
"""


def set_dna(home: Path, **values: float) -> None:
    with closing(LearningStore.in_home(home)) as store:
        store.save_dna(DNA(**values), "set")  # type: ignore[arg-type]


@pytest.fixture
async def orchestrator(isolated_home: Path) -> AsyncIterator[Orchestrator]:
    """The real orchestrator over SmolLM2, with Model DNA wired as `mirador` wires it."""
    (isolated_home / "config.yaml").write_text(CONFIG)
    settings = load_settings()
    made = Orchestrator(settings)
    personal = PersonalShaper(settings)
    made.shapers.append(personal)
    made.planner.shapers.append(personal)
    yield made
    await made.aclose()


def names(plan_stages: object) -> list[str]:
    return [s.name for s in plan_stages]  # type: ignore[attr-defined]


def test_never_set_and_middling_depth_leave_the_plan_alone(
        orchestrator: Orchestrator, isolated_home: Path) -> None:
    assert names(orchestrator.plan(MEDIUM).stages) == ["quick_response", "synthesis"]
    assert orchestrator.plan(MEDIUM).shaped == ()
    set_dna(isolated_home, technical_depth=0.5, verbosity=0.5)
    plan = orchestrator.plan(MEDIUM)
    assert names(plan.stages) == ["quick_response", "synthesis"] and plan.shaped == ()
    assert plan.prefer is None


def test_low_depth_runs_only_the_first_stage_unless_the_query_is_complex(
        orchestrator: Orchestrator, isolated_home: Path) -> None:
    set_dna(isolated_home, technical_depth=0.2)
    plan = orchestrator.plan(MEDIUM)
    assert names(plan.stages) == ["quick_response"]
    assert plan.shaped == ("Model DNA v1: technical depth 0.2 < 0.35: only quick_response ran "
                           "(dropped synthesis)",)
    assert names(orchestrator.plan(COMPLEX).stages) == FULL  # the router called it complex
    assert orchestrator.plan(COMPLEX).shaped == ()


def test_high_depth_runs_the_full_stages_for_simple_queries(
        orchestrator: Orchestrator, isolated_home: Path) -> None:
    set_dna(isolated_home, technical_depth=0.8)
    plan = orchestrator.plan(SIMPLE)
    assert names(plan.stages) == FULL
    assert "added deep_analysis, synthesis" in plan.shaped[0]


def test_the_persons_own_stages_and_chain_are_never_shaped(
        orchestrator: Orchestrator, isolated_home: Path) -> None:
    set_dna(isolated_home, technical_depth=0.2, verbosity=0.9)
    named = orchestrator.plan(MEDIUM, stages=["quick_response", "synthesis"])
    assert names(named.stages) == ["quick_response", "synthesis"] and named.shaped == ()
    chain = orchestrator.plan(MEDIUM, chain="strategic_synthesis")
    steps = orchestrator.manifest.chain("strategic_synthesis").steps
    assert names(chain.stages) == list(steps) and len(steps) > 1
    assert chain.shaped == () and chain.prefer is None


async def test_a_deep_profile_runs_every_stage_of_a_simple_query(
        orchestrator: Orchestrator, isolated_home: Path) -> None:
    set_dna(isolated_home, technical_depth=0.8)
    events: list[Event] = [e async for e in orchestrator.process(SIMPLE)]
    ack, done = events[0], events[-1]
    assert isinstance(ack, Ack) and ack.stages == FULL and ack.complexity == "simple"
    assert isinstance(done, Done) and list(done.answers) == FULL and done.answer


async def test_high_verbosity_makes_the_judge_take_the_longest_sound_answer(
        orchestrator: Orchestrator, isolated_home: Path) -> None:
    set_dna(isolated_home, technical_depth=0.8, verbosity=0.9)
    assert orchestrator.plan(SIMPLE).prefer == "longer"
    done = await orchestrator.answer(SIMPLE)
    assert done.quality is not None and done.final_stage is not None
    sound = {n: q for n, q in done.quality.items() if not q["flags"]}
    if not sound:
        pytest.skip("no stage of this run was sound: nothing for the preference to choose")
    best = max(q["relevance"] for q in sound.values())
    fit = [n for n, q in sound.items() if q["relevance"] >= best - WORSE_BY]
    words = {n: len(done.answers[n].text.split()) for n in fit}
    assert done.final_stage in fit
    assert words[done.final_stage] >= max(words.values()) - 2  # MiniLM's words vs split()


def test_the_length_preference_chooses_among_sound_stages_only() -> None:
    scores = {"a": StageQuality(0.6, 0.0), "b": StageQuality(0.58, 0.0),
              "c": StageQuality(0.3, 0.0), "d": StageQuality(0.7, 0.0, ("looped",))}
    words = {"a": 120, "b": 40, "c": 300, "d": 500}
    assert choose(list(scores), scores).stage == "b"  # the latest that is sound and relevant
    longer = choose(list(scores), scores, words, "longer")
    assert longer.stage == "a" and "the longer sound answer" in longer.reason
    assert longer.set_aside == ("b", "c", "d")
    assert choose(list(scores), scores, words, "shorter").stage == "b"
    # verbosity only expresses a preference when there is a choice to make
    assert staged(DNA(verbosity=0.9), "simple", ("quick_response",), tuple(FULL)).prefer is None
    assert staged(DNA(verbosity=0.1), "medium", ("quick_response", "synthesis"),
                  tuple(FULL)).prefer == "shorter"


async def test_why_shows_what_dna_did_to_the_plan(
        orchestrator: Orchestrator, isolated_home: Path, classifier: QueryClassifier) -> None:
    set_dna(isolated_home, technical_depth=0.2)
    fresh = QueryClassifier(classifier.embedder, classifier.seeds)
    learner = Learner(LearningStore.in_home(isolated_home), orchestrator.manifest,
                      lambda: fresh, seed=7)
    orchestrator.sinks.append(learner)
    try:
        done = await orchestrator.answer(MEDIUM)
        assert list(done.answers) == ["quick_response"]
        shown = render(learner.explain(done.answer_id))
    finally:
        learner.close()
    note = ("plan: Model DNA v1: technical depth 0.2 < 0.35: only quick_response ran "
            "(dropped synthesis)")
    assert note in shown
    assert "simple and medium queries run only their first stage" in shown
    why = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "mirador", "why",
                                                   done.answer_id],
                                  capture_output=True, text=True, timeout=120)
    assert why.returncode == 0 and note in why.stdout


def test_a_deep_profile_adds_only_configured_stages(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        "stages:\n  - {name: quick_response, persona: quick, confidence: 0.6}\n")
    set_dna(isolated_home, technical_depth=0.9)
    settings = load_settings()
    orchestrator = Orchestrator(settings)
    orchestrator.planner.shapers.append(PersonalShaper(settings))
    plan = orchestrator.plan(SIMPLE)  # routing names deep_analysis and synthesis: not here
    assert names(plan.stages) == ["quick_response"] and plan.shaped == ()
