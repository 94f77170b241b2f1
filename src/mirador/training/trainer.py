"""One training run: gather the exchanges, train a LoRA, judge it, deploy it or say why not.

A new adapter is deployed only if, under llama.cpp on the quantized base, its
held-out answers' loss is lower than with the adapter in use (or none), and the
general set's loss is not more than `general_tolerance` worse. Every run is kept
as a version with its metrics and verdict, deployed or not. An interrupted run
(Ctrl-C) removes its partial version and leaves the deployed adapter as it was.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from mirador.catalog.manifest import Manifest, ResolvedPersona, manifest_for
from mirador.catalog.packaged import packaged_gguf
from mirador.errors import TrainingError
from mirador.learning.adapters import ADAPTER_FILE, AdapterStore, AdapterVersion
from mirador.settings import Settings
from mirador.training import gate, judge
from mirador.training.examples import Exchange, gather, split
from mirador.training.gguf_lora import write_adapter
from mirador.training.lora import Encoded, TorchBase, TrainConfig, encode, load_base, train


class Reporter(Protocol):
    """Told what a run is doing: a phase's name, then each training step."""

    def phase(self, text: str) -> None: ...

    def step(self, done: int, total: int, loss: float) -> None: ...


class Quiet:
    """A reporter that reports nothing."""

    def phase(self, text: str) -> None:
        return None

    def step(self, done: int, total: int, loss: float) -> None:
        return None


@dataclass(frozen=True)
class TrainOptions:
    """A run's choices; see `mirador train --help`."""

    persona: str = "quick"
    min_examples: int = 4
    held_out: float = 0.25
    seed: int = 0
    # The general set's loss may grow this much (1.0: up to twice), no more. Learning a
    # style raises the loss of plainly phrased answers however good it is, so this guards
    # against damage (an adapter that breaks the model), not against a change of style.
    general_tolerance: float = 1.0
    # General questions answered greedily with and without the new adapter (gate.py):
    # relevance and degeneracy must not get worse. 0: the check is off.
    quality_questions: int = 0
    quality_tokens: int = 64
    deploy: bool = True
    threads: int | None = None
    config: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class Outcome:
    """What a run made and decided."""

    version: AdapterVersion
    deployed: bool
    reason: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class _Setup:
    persona: ResolvedPersona
    gguf: Path
    store: AdapterStore
    current: AdapterVersion | None


def train_adapter(settings: Settings, options: TrainOptions, reporter: Reporter | None = None,
                  manifest: Manifest | None = None, base: TorchBase | None = None,
                  exchanges: Sequence[Exchange] | None = None) -> Outcome:
    """Train, judge and (if it wins) deploy a new adapter for `options.persona`."""
    reporter = reporter or Quiet()
    setup = _setup(settings, options, manifest or manifest_for(settings))
    found = list(gather(settings) if exchanges is None else exchanges)
    if len(found) < options.min_examples:
        raise TrainingError(
            f"only {len(found)} exchange(s) to learn from (rated 4-5 or corrected with "
            f"'better: ...'); at least {options.min_examples} are needed: rate more answers "
            "with `mirador rate 5` (or lower --min-examples)")
    training, held = split(found, options.held_out, options.seed)
    reporter.phase(f"loading {setup.gguf.name} into torch")
    base = base or load_base(setup.gguf, options.threads)
    return _run(settings, options, setup, base, (training, held), reporter)


def _setup(settings: Settings, options: TrainOptions, manifest: Manifest) -> _Setup:
    persona, gguf = persona_base(settings, options.persona, manifest)
    store = AdapterStore(settings.home, persona.id)
    return _Setup(persona, gguf, store, store.deployed())


def persona_base(settings: Settings, persona_id: str,
                 manifest: Manifest | None = None) -> tuple[ResolvedPersona, Path]:
    """The persona and the GGUF file its adapters are trained on (llamacpp models only)."""
    persona = (manifest or manifest_for(settings)).resolve(persona_id)
    model = persona.model
    if model.backend != "llamacpp":
        raise TrainingError(f"persona '{persona.id}' runs on {model.backend}; adapters are "
                            "trained for llamacpp (GGUF) models only")
    if model.path:
        gguf = Path(model.path).expanduser()
    elif model.package:
        gguf = packaged_gguf(model.package, settings.models_dir)
    else:
        raise TrainingError(f"model '{model.id}' has no GGUF file or package to train on")
    return persona, gguf


def _run(settings: Settings, options: TrainOptions, setup: _Setup, base: TorchBase,
         sets: tuple[list[Exchange], list[Exchange]], reporter: Reporter) -> Outcome:
    training, held = sets
    system = setup.persona.system
    cut = options.config.max_tokens
    train_ids = [encode(base, system, e.query, e.answer, cut) for e in training]
    held_ids = [encode(base, system, e.query, e.answer, cut) for e in held]
    general_ids = [encode(base, system, q, a, cut) for q, a in general_set()]
    threads = options.threads or 1
    current = setup.current.adapter if setup.current else None
    reporter.phase("measuring the adapter in use" if current else "measuring the base model")
    before = (judge.answer_loss(setup.gguf, current, held_ids, threads),
              judge.answer_loss(setup.gguf, current, general_ids, threads))
    quality_before = _general_quality(setup, current, options, "before")
    version = setup.store.next_version()
    staging = setup.store.staging(version)
    try:
        made = _train_and_judge(setup, base, options, (train_ids, held_ids, general_ids),
                                staging, reporter)
        metrics = {**_metrics(before, made), **quality_before}
        accepted, reason = verdict(metrics, options.general_tolerance, current is not None)
        meta = _meta(setup, options, sets, metrics, accepted, reason)
        finished = setup.store.finish(staging, meta)
    except BaseException:
        setup.store.discard(staging)  # Ctrl-C too: the deployed adapter is untouched
        raise
    deployed = accepted and options.deploy
    if deployed:
        setup.store.use(finished.version)
    return Outcome(finished, deployed, reason, metrics)


def _train_and_judge(setup: _Setup, base: TorchBase, options: TrainOptions,
                     encoded: tuple[list[Encoded], list[Encoded], list[Encoded]],
                     staging: Path, reporter: Reporter) -> dict[str, float]:
    train_ids, held_ids, general_ids = encoded
    reporter.phase(f"training on {len(train_ids)} exchange(s)")
    started = time.perf_counter()
    weights = train(base, train_ids, options.config, reporter.step)
    seconds = time.perf_counter() - started
    adapter = write_adapter(weights, staging / ADAPTER_FILE, architecture=base.architecture,
                            heads=base.heads)
    reporter.phase("judging the new adapter under llama.cpp")
    threads = options.threads or 1
    return {"held_out_loss_after": judge.answer_loss(setup.gguf, adapter, held_ids, threads),
            "general_loss_after": judge.answer_loss(setup.gguf, adapter, general_ids, threads),
            **_general_quality(setup, adapter, options, "after"),
            "train_seconds": round(seconds, 2), "adapter_bytes": adapter.stat().st_size,
            "peak_rss_mb": round(_peak_rss_mb(), 1)}


def _general_quality(setup: _Setup, adapter: Path | None, options: TrainOptions,
                     when: str) -> dict[str, float]:
    """The general questions' matched@1 and degenerate counts with `adapter` (gate.py)."""
    if not options.quality_questions:
        return {}
    found = gate.measure(setup.gguf, adapter, setup.persona.system, options.quality_questions,
                         options.quality_tokens, options.threads or 1,
                         repeat_penalty=setup.persona.options.repeat_penalty)
    return {"general_questions": found.questions, f"general_matched_{when}": found.matched,
            f"general_degenerate_{when}": found.degenerate}


def _metrics(before: tuple[float, float], made: dict[str, float]) -> dict[str, float]:
    return {"held_out_loss_before": round(before[0], 4),
            "general_loss_before": round(before[1], 4),
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in made.items()}}


def verdict(metrics: dict[str, float], tolerance: float, has_current: bool) -> tuple[bool, str]:
    """(deploy?, why): the held-out loss must drop and the general set hold."""
    against = "the adapter in use" if has_current else "the base model"
    before, after = metrics["held_out_loss_before"], metrics["held_out_loss_after"]
    if not after < before:
        return False, (f"held-out loss {after:.3f} is not better than {against}'s "
                       f"{before:.3f}")
    general, general_after = metrics["general_loss_before"], metrics["general_loss_after"]
    if general_after > general * (1 + tolerance):
        return False, (f"the general set got worse: loss {general_after:.3f} against "
                       f"{general:.3f} with {against} (more than {tolerance:.0%} worse)")
    quality = _quality_problem(metrics, against)
    if quality is not None:
        return False, quality
    return True, (f"held-out loss {before:.3f} -> {after:.3f}; general set "
                  f"{general:.3f} -> {general_after:.3f}{_quality_note(metrics)}")


def _quality_problem(metrics: dict[str, float], against: str) -> str | None:
    if "general_matched_after" not in metrics:
        return None
    count = int(metrics["general_questions"])
    before, after = (gate.GeneralQuality(int(metrics[f"general_matched_{w}"]),
                                         int(metrics[f"general_degenerate_{w}"]), count)
                     for w in ("before", "after"))
    return gate.worse(before, after, against)


def _quality_note(metrics: dict[str, float]) -> str:
    if "general_matched_after" not in metrics:
        return ""
    return (f"; general questions matched {metrics['general_matched_before']:g} -> "
            f"{metrics['general_matched_after']:g} of {metrics['general_questions']:g}, "
            f"degenerate {metrics['general_degenerate_before']:g} -> "
            f"{metrics['general_degenerate_after']:g}")


def _meta(setup: _Setup, options: TrainOptions, sets: tuple[list[Exchange], list[Exchange]],
          metrics: dict[str, float], accepted: bool, reason: str) -> dict[str, Any]:
    training, held = sets
    return {"persona": setup.persona.id, "base_model": setup.persona.model.id,
            "base_file": str(setup.gguf), "base_sha256": file_sha256(setup.gguf),
            "created_at": time.time(), "train_ids": [e.answer_id for e in training],
            "held_out_ids": [e.answer_id for e in held], "metrics": metrics,
            "config": asdict(options.config), "verdict": "accepted" if accepted else "rejected",
            "reason": reason,
            "replaces": setup.current.version if setup.current else None}


def general_set() -> list[tuple[str, str]]:
    """The general questions an adapter must not make worse (training/general.yaml)."""
    text = resources.files("mirador.training").joinpath("general.yaml").read_text()
    return [(item["q"], item["a"]) for item in yaml.safe_load(text)]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
