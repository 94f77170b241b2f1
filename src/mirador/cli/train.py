"""`mirador train`: train a LoRA adapter on your best-rated answers, deploy it if it is better."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TYPE_CHECKING

import click

from mirador.settings import Settings, load_settings

if TYPE_CHECKING:
    from mirador.training.trainer import TrainOptions


class BarReporter:
    """A progress bar with ETA on stderr for the training steps, a line for each phase."""

    def __init__(self) -> None:
        self._started = time.monotonic()  # when the phase began: steps count from there
        self._stepping = False

    def phase(self, text: str) -> None:
        if self._stepping:
            click.echo(file=sys.stderr)
            self._stepping = False
        click.echo(f"{text} ...", err=True)
        self._started = time.monotonic()

    def step(self, done: int, total: int, loss: float) -> None:
        self._stepping = True
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (total - done)
        filled = int(30 * done / total)
        click.echo(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} steps  "
                   f"loss {loss:.3f}  ETA {eta:4.0f}s", nl=False, err=True)


def gated(options: TrainOptions, settings: Settings, questions: int | None = None
          ) -> TrainOptions:
    """`options` with the general-question check sized from config.yaml (unless given)."""
    config = settings.config.training
    return dataclasses.replace(
        options, quality_tokens=config.quality_tokens,
        quality_questions=config.quality_questions if questions is None else questions)


@click.command()
@click.option("--persona", default="quick", show_default=True,
              help="The persona whose adapter is trained (its base must be a GGUF model).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1, 100))
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many steps.")
@click.option("--rank", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option("--learning-rate", default=1e-3, show_default=True, type=click.FloatRange(0,
              min_open=True))
@click.option("--min-examples", default=4, show_default=True, type=click.IntRange(2))
@click.option("--threads", type=click.IntRange(1), help="CPU threads (default: torch's).")
@click.option("--quality-questions", type=click.IntRange(0, 200),
              help="General questions the gate answers with and without the new adapter "
                   "(default: training.quality_questions in config.yaml; 0: off).")
@click.option("--no-deploy", is_flag=True, help="Train and judge, but keep the adapter in use.")
def train(persona: str, epochs: int, max_steps: int | None, rank: int, learning_rate: float,
          min_examples: int, threads: int | None, quality_questions: int | None,
          no_deploy: bool) -> None:
    """Train an adapter on the exchanges you rated 4-5 (and 'better: ...' notes).

    The new adapter is deployed only if it beats the one in use on held-out
    exchanges and does not make a general set worse; otherwise it is kept as a
    rejected version and the reason is printed. Ctrl-C leaves the adapter in use.
    """
    from mirador.learning.adapters import AdapterStore
    from mirador.training.lora import TrainConfig
    from mirador.training.trainer import TrainOptions, train_adapter

    settings = load_settings()
    config = TrainConfig(rank=rank, alpha=2 * rank, learning_rate=learning_rate,
                         epochs=epochs, max_steps=max_steps)
    options = gated(TrainOptions(persona=persona, min_examples=min_examples,
                                 deploy=not no_deploy, threads=threads, config=config),
                    settings, quality_questions)
    try:
        outcome = train_adapter(settings, options, BarReporter())
    except KeyboardInterrupt:
        deployed = AdapterStore(settings.home, persona).deployed()
        in_use = deployed.version if deployed else "none, the base model alone"
        click.echo(f"\ntraining interrupted; the adapter in use is unchanged ({in_use})",
                   err=True)
        raise
    click.echo(file=sys.stderr)
    version = outcome.version.version
    if outcome.deployed:
        click.echo(f"deployed adapter {version} for '{persona}': {outcome.reason}")
    elif outcome.version.verdict == "accepted":
        click.echo(f"adapter {version} passed ({outcome.reason}) but was not deployed "
                   f"(--no-deploy); use it with: mirador adapters use {version}")
    else:
        click.echo(f"rejected adapter {version}: {outcome.reason}; the adapter in use is "
                   "unchanged")
