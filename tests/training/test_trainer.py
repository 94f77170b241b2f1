"""Real training on SmolLM2: a GGUF LoRA llama.cpp loads, that moves answers toward what
the person rated highly; deployed only when better, rejected with the reason, rolled back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirador.catalog.adapters import adapter_problems
from mirador.catalog.gguf_info import read_gguf_info
from mirador.errors import TrainingError
from mirador.learning.adapters import AdapterStore
from mirador.settings import Settings
from mirador.training import judge
from mirador.training.lora import TorchBase, TrainConfig
from mirador.training.trainer import TrainOptions, train_adapter, verdict
from tests.support.tiny_gguf import write_lora_for
from tests.training.conftest import STYLED, write_history

QUICK = TrainConfig(rank=4, alpha=8, learning_rate=2e-3, epochs=2, max_steps=10,
                    max_tokens=64)


def options(**changes: object) -> TrainOptions:
    return TrainOptions(**{"config": QUICK, "threads": 1, **changes})  # type: ignore[arg-type]


@pytest.mark.timeout(900)
def test_an_adapter_is_trained_deployed_rejected_and_rolled_back(
        settings: Settings, torch_base: TorchBase, smollm_gguf: Path) -> None:
    write_history(settings.home, STYLED)
    store = AdapterStore(settings.home, "quick")
    first = train_adapter(settings, options(general_tolerance=3.0), base=torch_base)
    metrics = first.metrics
    assert first.deployed, first.reason
    assert metrics["held_out_loss_after"] < metrics["held_out_loss_before"]
    adapter = first.version.adapter
    assert adapter_problems(read_gguf_info(adapter), read_gguf_info(smollm_gguf)) == []
    meta = first.version.meta
    assert len(meta["train_ids"]) == 6 and len(meta["held_out_ids"]) == 2
    assert len(meta["base_sha256"]) == 64 and meta["verdict"] == "accepted"

    held = [query for i, (query, _) in enumerate(STYLED) if f"a{i:03d}" in meta["held_out_ids"]]
    plain = judge.generate(smollm_gguf, None, held, None, max_tokens=24)
    tuned = judge.generate(smollm_gguf, adapter, held, None, max_tokens=24)
    assert sum(t.startswith("In short") for t in tuned) > sum(
        p.startswith("In short") for p in plain), (plain, tuned)

    weak = train_adapter(settings, options(general_tolerance=3.0, config=TrainConfig(
        rank=4, alpha=8, learning_rate=1e-9, max_steps=1, max_tokens=64)), base=torch_base)
    assert not weak.deployed
    assert "not better than the adapter in use" in weak.reason
    assert [v.verdict for v in store.versions()] == ["accepted", "rejected"]
    assert store.deployed().version == "v0001"  # type: ignore[union-attr]

    assert store.rollback() is None and store.deployed() is None
    store.use("v0001")
    store.use("2")
    assert store.deployed().version == "v0002"  # type: ignore[union-attr]
    assert store.rollback().version == "v0001"  # type: ignore[union-attr]


def test_an_adapter_that_hurts_the_general_set_is_rejected() -> None:
    metrics = {"held_out_loss_before": 2.0, "held_out_loss_after": 0.5,
               "general_loss_before": 1.4, "general_loss_after": 3.3}
    accepted, reason = verdict(metrics, tolerance=1.0, has_current=False)
    assert not accepted
    assert reason == ("the general set got worse: loss 3.300 against 1.400 with the base "
                      "model (more than 100% worse)")
    assert verdict(metrics, tolerance=2.0, has_current=False)[0]


def test_too_few_examples_is_refused_with_what_to_do(settings: Settings) -> None:
    write_history(settings.home, STYLED[:2])
    with pytest.raises(TrainingError, match="rate more answers"):
        train_adapter(settings, options())
    assert not (settings.home / "adapters").exists()


@pytest.mark.timeout(600)
def test_ctrl_c_leaves_the_deployed_adapter(settings: Settings, smollm_gguf: Path) -> None:
    write_history(settings.home, STYLED)
    store = AdapterStore(settings.home, "quick")
    staging = store.staging("v0001")
    write_lora_for(smollm_gguf, staging / "adapter.gguf", rank=2, strength=0.01,
                   targets=("attn_q", "attn_v"))
    store.finish(staging, {"verdict": "accepted", "metrics": {}})
    store.use("v0001")
    state = (store.root / "state.json").read_text()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mirador", "train", "--threads", "1", "--epochs", "50"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + 240
    while "training on" not in seen and time.monotonic() < deadline:
        seen += process.stderr.readline()
        assert process.poll() is None, seen
    time.sleep(3)  # into the steps
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, seen + rest
    assert "the adapter in use is unchanged (v0001)" in rest
    assert (store.root / "state.json").read_text() == state
    assert sorted(p.name for p in store.root.iterdir()) == ["state.json", "v0001"]
    assert json.loads(state)["deployed"] == "v0001"
