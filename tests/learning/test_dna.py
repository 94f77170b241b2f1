"""Model DNA: stored and versioned with the ratings, validated, learned from notes, and
applied to each stage's request (system prompt and length budget) with the deployed adapter."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from mirador.backends import ChatRequest, Message
from mirador.catalog.manifest import SamplingOptions, load_manifest
from mirador.errors import ConfigError
from mirador.learning import Learner
from mirador.learning.adapters import AdapterStore
from mirador.learning.dna import DNA, changed, learned, shaping
from mirador.learning.personal import PersonalShaper
from mirador.learning.store import AnswerLog, LearningStore
from mirador.settings import Settings
from tests.support.tiny_gguf import write_lora_for


def mirador(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirador", *args], capture_output=True,
                          text=True, timeout=120)


def request(max_tokens: int | None = 160) -> ChatRequest:
    persona = load_manifest(None).resolve("quick")
    return ChatRequest(model=persona.model, options=SamplingOptions(max_tokens=max_tokens),
                       messages=(Message("system", "You are Mirador."), Message("user", "Hi")))


def test_set_validates_and_versions(settings: Settings) -> None:
    with closing(LearningStore.in_home(settings.home)) as store:
        assert store.dna().number == 0 and store.dna().dna == DNA()
        store.save_dna(changed(store.dna().dna, "verbosity", "0.2"), "set")
        store.save_dna(changed(store.dna().dna, "domains", "law, tax"), "set")
        assert [v.number for v in store.dna_history()] == [1, 2]
        assert store.dna().dna.verbosity == 0.2 and store.dna().dna.domains == ("law", "tax")
    with pytest.raises(ConfigError, match="less than or equal to 1"):
        changed(DNA(), "verbosity", "1.5")
    with pytest.raises(ConfigError, match="the keys are: reasoning_style"):
        changed(DNA(), "colour", "red")


def test_the_cli_shows_sets_refuses_and_resets(isolated_home: Path) -> None:
    assert "never set" in mirador("dna", "show").stdout
    done = mirador("dna", "set", "verbosity", "0.2")
    assert done.returncode == 0 and "max tokens x0.6" in done.stdout
    bad = mirador("dna", "set", "pace", "slow")
    assert bad.returncode == 1 and "'brisk', 'steady' or 'patient'" in bad.stderr
    assert "Model DNA v2 (reset" in mirador("dna", "reset").stdout
    assert len(mirador("dna", "show", "--history", "--json").stdout.split('"version"')) == 3


def test_rating_notes_move_verbosity_and_depth(settings: Settings) -> None:
    assert learned(DNA(), "too long, and too technical") == DNA(verbosity=0.4,
                                                                 technical_depth=0.4)
    assert learned(DNA(verbosity=0.95), "more detail please") == DNA(verbosity=1.0)
    assert learned(DNA(), "spot on") is None
    with Learner.for_ratings(settings) as learner:
        learner.store.record_answer(AnswerLog(answer_id="x1", query="q", domain="general",
                                              complexity="simple", query_type="fact",
                                              chain="quick", status="ok"))
        learner.rate("x1", 3, note="Too long")
        version = learner.store.dna()
    assert (version.source, version.dna.verbosity, version.note) == ("learned", 0.4, "Too long")


def test_verbosity_shapes_the_system_prompt_and_the_length_budget(settings: Settings) -> None:
    assert shaping(DNA(verbosity=0.9)).tokens(160) > 2 * shaping(DNA(verbosity=0.2)).tokens(160)
    assert shaping(DNA(verbosity=0.5)).tokens(160) == 160  # the middle band leaves length alone
    shaper = PersonalShaper(settings)
    persona = load_manifest(None).resolve("quick")
    assert shaper.shape("first", persona, request()) == request()  # never set: untouched
    assert not (settings.home / "learning.db").exists()
    with closing(LearningStore.in_home(settings.home)) as store:
        store.save_dna(DNA(verbosity=0.2, frameworks=("first principles",)), "set")
    shaped = shaper.shape("first", persona, request())
    assert shaped.options.max_tokens == 96  # 160 x 0.6
    assert shaped.messages[0].content.startswith("You are Mirador.\nAnswer very briefly")
    assert "first principles" in shaped.messages[0].content
    # asked again after the question, and ended at the first paragraph (a sentence's end)
    assert shaped.messages[-1].content.endswith("\n\nAnswer in one or two sentences.")
    assert shaped.options.stop == ["\n\n"]
    with closing(LearningStore.in_home(settings.home)) as store:
        store.save_dna(DNA(verbosity=0.9), "set")
    full = shaper.shape("first", persona, request())
    assert full.options.max_tokens == 376 and full.options.stop is None  # 160 x 2.35
    assert full.messages[-1].content.endswith("\n\nAnswer in three to five paragraphs.")
    assert "give specifics, the steps to take and an example" in full.messages[0].content
    assert shaper.shape("first", persona, request(None)).options.max_tokens is None


def test_the_deployed_adapter_rides_on_its_persona(settings: Settings, smollm_gguf: Path) -> None:
    store = AdapterStore(settings.home, "quick")
    staging = store.staging("v0001")
    write_lora_for(smollm_gguf, staging / "adapter.gguf", rank=2, targets=("attn_v",))
    store.finish(staging, {"verdict": "accepted", "base_model": "smollm2-135m"})
    manifest = load_manifest(None)
    shaper = PersonalShaper(settings)
    assert shaper.shape("first", manifest.resolve("quick"), request()).loras == ()
    store.use("v0001")
    (lora,) = shaper.shape("first", manifest.resolve("quick"), request()).loras
    assert lora.path == str(store.root / "v0001" / "adapter.gguf")
    assert shaper.shape("deeper", manifest.resolve("analyst"), request()).loras == ()


def test_why_shows_what_dna_did_to_the_answer(settings: Settings) -> None:
    with Learner.for_ratings(settings) as learner:
        learner.store.record_answer(AnswerLog(answer_id="before", query="q", domain="general",
                                              complexity="simple", query_type="fact",
                                              chain="quick", status="ok", created_at=1.0))
        learner.store.save_dna(DNA(verbosity=0.2), "set")
        learner.store.record_answer(AnswerLog(answer_id="after", query="q", domain="general",
                                              complexity="simple", query_type="fact",
                                              chain="quick", status="ok"))
        assert learner.explain("before")["dna"]["effect"] == "none (Model DNA never set)"
        assert "max tokens x0.6" in learner.explain("after")["dna"]["effect"]
    assert "Model DNA v1 when it answered: max tokens x0.6" in mirador("why", "after").stdout
