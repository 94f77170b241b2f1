"""The composition root: what `mirador ask` builds for one answer in a fresh process."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.compose import open_for_one_answer
from mirador.errors import ConfigError
from mirador.learning import Learner
from mirador.memory import Memory
from mirador.orchestration.events import Ack, Done, StageStart
from mirador.orchestration.hooks import Query
from mirador.settings import Settings


async def test_one_answer_warms_the_first_model_and_keeps_learning_and_memory(
        settings: Settings, tiny_gguf: Path) -> None:
    orchestrator = await open_for_one_answer(settings, warm=True, model=str(tiny_gguf))
    try:
        await orchestrator.manager.settled()  # the warm-up began before any question
        assert orchestrator.manager.is_loaded(tiny_gguf.stem)
        assert isinstance(orchestrator.chooser, Learner)
        assert orchestrator.chooser in orchestrator.sinks
        assert isinstance(orchestrator.context, Memory)
        assert orchestrator.context in orchestrator.sinks
        choice = orchestrator.chooser.choose(Query("Plan my week"))
        assert choice is not None and choice.chain == "auto" and "cold start" in choice.reason
        events = [e async for e in orchestrator.process("What should I focus on today?",
                                                        model=str(tiny_gguf))]
    finally:
        await orchestrator.aclose()
    ack, done = events[0], events[-1]
    assert isinstance(ack, Ack) and isinstance(done, Done)
    assert ack.chain == "auto"  # no rating yet: the learner picks the routed stages
    assert [e.stage for e in events if isinstance(e, StageStart)] == ack.stages
    assert done.status in ("ok", "partial")


async def test_a_manifest_naming_an_unknown_tool_is_refused_and_closes_the_learner(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner opens while tools are checked: when the check fails, what opened closes."""
    (settings.home / "manifest.yaml").write_text(
        "personas:\n  - id: helper\n    model: smollm2-135m\n    tools: [nope]\n")
    closed: list[Learner] = []
    close = Learner.close
    monkeypatch.setattr(Learner, "close", lambda self: (closed.append(self), close(self))[1])
    with pytest.raises(ConfigError, match="names tool 'nope'"):
        await open_for_one_answer(settings, warm=False)
    assert len(closed) == 1
