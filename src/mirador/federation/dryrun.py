"""`mirador federate --dry-run`: one local round, measured, and nothing sent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mirador.settings import Settings
from mirador.training.lora import train

from . import accounting
from .peer import open_peer, start_arrays
from .plan import RoundPlan
from .tensors import difference, from_arrays, nbytes, norm, to_arrays


@dataclass(frozen=True)
class DryRun:
    """What one round would send, and the privacy it would cost."""

    examples: int
    parameters: int
    update_bytes: int
    update_norm: float
    clipped_norm: float
    noise_std: float
    noise_norm: float  # of one draw of the noise on the averaged update
    epsilon_round: float
    epsilon_total: float
    rounds: int
    delta: float

    @property
    def signal_to_noise(self) -> float:
        """Your clipped update's share of the average against the noise added to it."""
        return self.clipped_norm / self.noise_norm if self.noise_norm else math.inf


def dry_run(settings: Settings, persona: str, plan: RoundPlan, cache: Path | None,
            peers: int) -> DryRun:
    """Train one round's local update from the starting adapter; send nothing."""
    peer = open_peer(settings.home, persona, cache, plan)
    start = start_arrays(peer, plan)
    config = plan.train_config()
    weights = train(peer.base, peer.train, config,
                    start=from_arrays(start, config.rank, config.alpha, config.targets))
    update = difference(to_arrays(weights), start)
    size = norm(update)
    std = accounting.noise_std(plan.noise_multiplier, plan.clipping_norm, peers)
    count = sum(u.size for u in update)
    draw = np.random.default_rng().normal(0.0, std, count) if std else np.zeros(1)
    return DryRun(examples=len(peer.train), parameters=count, update_bytes=nbytes(update),
                  update_norm=size, clipped_norm=min(size, plan.clipping_norm),
                  noise_std=std, noise_norm=float(np.linalg.norm(draw)),
                  epsilon_round=accounting.epsilon(plan.noise_multiplier, 1, plan.delta),
                  epsilon_total=accounting.epsilon(plan.noise_multiplier, plan.rounds,
                                                   plan.delta),
                  rounds=plan.rounds, delta=plan.delta)
