"""bench/learning.py's simulated person and summary, on a short schedule (not a benchmark)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mirador.catalog.manifest import Manifest
from mirador.learning import Learner, LearningStore

BENCH = Path(__file__).resolve().parents[2] / "bench" / "learning.py"

CLEAR = """
rating: {noise: 0.0, good: {5: 1.0}, bad: {1: 1.0}}
change_after: 25
after_change: 15
types:
  general/simple:
    before: {rapid_decision: 0.1, life_optimization: 0.1, strategic_synthesis: 0.1, auto: 0.95}
    after: {rapid_decision: 0.95, life_optimization: 0.1, strategic_synthesis: 0.1, auto: 0.1}
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_learning", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_learning"] = module
    spec.loader.exec_module(module)
    return module


def test_the_simulated_person_is_learned_and_the_change_followed(
        bench: ModuleType, manifest: Manifest, tmp_path: Path) -> None:
    path = tmp_path / "clear.yaml"
    path.write_text(CLEAR)
    probe = Learner(LearningStore.open(tmp_path / "probe.db"), manifest)
    prefs = bench.load_preferences(path, probe)
    probe.close()
    runs = [bench.simulate(prefs, manifest, seed, tmp_path) for seed in range(3)]
    summary = bench.summarise(prefs, manifest, runs)
    assert summary["checkpoints"]["25"]["overall"] >= 0.8
    assert summary["after_change"]["10"]["overall"] > summary["random_overall"]
    assert summary["regret"]["learner"] < summary["regret"]["random"]


def test_a_preferences_file_must_give_the_manifests_candidates(
        bench: ModuleType, manifest: Manifest, tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(CLEAR.replace("life_optimization", "no_such_chain"))
    probe = Learner(LearningStore.open(tmp_path / "probe.db"), manifest)
    with pytest.raises(SystemExit, match="must give every candidate chain"):
        bench.load_preferences(path, probe)
    probe.close()
