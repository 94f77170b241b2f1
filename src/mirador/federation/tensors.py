"""A LoRA as the flat, ordered list of arrays Flower averages, and back.

The order is fixed by (layer, projection) sorted, A before B, so every peer and the
coordinator agree without sending names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mirador.errors import FederationError
from mirador.training.lora import LoraWeights


def to_arrays(weights: LoraWeights) -> list[np.ndarray]:
    """The matrices in the shared order: for each (layer, projection), A then B."""
    arrays: list[np.ndarray] = []
    for key in sorted(weights.pairs):
        a, b = weights.pairs[key]
        arrays += [np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)]
    return arrays


def from_arrays(arrays: Sequence[np.ndarray], rank: int, alpha: int,
                targets: Sequence[str]) -> LoraWeights:
    """The LoRA `to_arrays` flattened, given the targets it was made with."""
    per_layer = 2 * len(targets)
    if not arrays or len(arrays) % per_layer:
        raise FederationError(f"the shared adapter has {len(arrays)} arrays, not a multiple "
                              f"of {per_layer} ({len(targets)} projections x A, B); the "
                              "peers disagree about the adapter's targets")
    keys = sorted((layer, target) for layer in range(len(arrays) // per_layer)
                  for target in targets)
    pairs = {key: (np.asarray(arrays[2 * i], dtype=np.float32),
                   np.asarray(arrays[2 * i + 1], dtype=np.float32))
             for i, key in enumerate(keys)}
    return LoraWeights(rank, alpha, pairs)


def difference(after: Sequence[np.ndarray], before: Sequence[np.ndarray]) -> list[np.ndarray]:
    """after - before, array by array (an update)."""
    if len(after) != len(before):
        raise FederationError(f"adapters of {len(after)} and {len(before)} arrays cannot "
                              "be compared")
    return [np.subtract(x, y) for x, y in zip(after, before, strict=True)]


def norm(arrays: Sequence[np.ndarray]) -> float:
    """L2 norm of all the arrays taken as one vector (what clipping bounds)."""
    return float(np.sqrt(sum(float(np.square(a, dtype=np.float64).sum()) for a in arrays)))


def nbytes(arrays: Sequence[np.ndarray]) -> int:
    """Bytes of the arrays' data."""
    return int(sum(a.nbytes for a in arrays))
