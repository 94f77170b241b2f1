"""The privacy budget: epsilon of the Gaussian mechanism over rounds, by Renyi DP.

Every round each peer's update is clipped to L2 norm C, the updates are averaged over
n peers and Gaussian noise of standard deviation z*C/n is added (Flower's
DifferentialPrivacyClientSideFixedClipping): one round is the Gaussian mechanism with
noise multiplier z on a sum whose sensitivity is C. Its Renyi DP of order a is
a / (2 z^2) (Mironov 2017, "Renyi Differential Privacy", Prop. 7); T rounds compose to
T a / (2 z^2), and RDP of order a converts to (epsilon, delta)-DP with
epsilon = rdp + log(1/delta) / (a - 1) (ibid., Prop. 3). Minimising over a > 1 gives
the closed form below. Every peer takes part in every round, so no amplification by
sampling is claimed: the figure is an upper bound.
"""

from __future__ import annotations

import math


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """(epsilon, delta)-DP spent by `rounds` rounds; inf when there is no noise."""
    if rounds <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    log_term = math.log(1 / delta)
    z = noise_multiplier
    return rounds / (2 * z * z) + math.sqrt(2 * rounds * log_term) / z


def best_order(noise_multiplier: float, rounds: int, delta: float) -> float:
    """The Renyi order at which `epsilon` is reached (for the log)."""
    return 1 + noise_multiplier * math.sqrt(2 * math.log(1 / delta) / rounds)


def noise_std(noise_multiplier: float, clipping_norm: float, peers: int) -> float:
    """Standard deviation of the noise on each coordinate of the averaged update."""
    return noise_multiplier * clipping_norm / peers
