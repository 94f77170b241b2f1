"""A round's shared adapter, registered in the peer's AdapterStore and deployed if it helps.

Each round the peer keeps the shared adapter as a version of its persona's adapters
(`mirador.learning.adapters`, the store `mirador train` and `mirador adapters` use), with
meta saying where it came from (source "federation", round, base model hash, held-out
loss). It is deployed only if its held-out loss beats the adapter deployed now (or the
base model), judged now on the same examples; otherwise it is kept, not deployed, and
the reason is logged. `mirador adapters rollback` undoes a deploy as for any version.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirador.learning.adapters import ADAPTER_FILE, AdapterStore, AdapterVersion
from mirador.training import judge
from mirador.training.trainer import file_sha256

from .peer import Peer, log


@dataclass(frozen=True)
class Adoption:
    """What became of one round's adapter on one peer."""

    version: AdapterVersion
    deployed: bool
    reason: str


def adopt(peer: Peer, adapter: Path, loss: float, round_number: int) -> Adoption:
    """Register `adapter` (held-out loss `loss`) as a version; deploy it if it beats the
    deployed one on the peer's held-out examples."""
    store = AdapterStore(peer.home, peer.persona)
    current = store.deployed()
    before = judge.answer_loss(peer.gguf, current.adapter if current else None, peer.judged)
    deploy, reason = _verdict(before, loss, current)
    staging = store.staging(store.next_version())
    try:
        shutil.copy2(adapter, staging / ADAPTER_FILE)
        made = store.finish(staging, _meta(peer, round_number, before, loss, deploy, reason,
                                           current))
    except BaseException:
        store.discard(staging)
        raise
    if deploy:
        store.use(made.version)
    log(peer, {"round": round_number, "event": "deployed" if deploy else "kept",
               "version": made.version, "reason": reason})
    return Adoption(made, deploy, reason)


def _verdict(before: float, after: float, current: AdapterVersion | None) -> tuple[bool, str]:
    against = f"the deployed adapter {current.version}" if current else "the base model"
    if after < before:
        return True, f"held-out loss {before:.3f} with {against} -> {after:.3f}"
    return False, (f"held-out loss {after:.3f} is not better than {against}'s {before:.3f}; "
                   "kept, not deployed")


def _meta(peer: Peer, round_number: int, before: float, after: float, deploy: bool,
          reason: str, current: AdapterVersion | None) -> dict[str, Any]:
    return {"source": "federation", "round": round_number, "persona": peer.persona,
            "base_file": str(peer.gguf), "base_sha256": file_sha256(peer.gguf),
            "created_at": time.time(),
            "metrics": {"held_out_loss_before": round(before, 4),
                        "held_out_loss_after": round(after, 4),
                        "held_out_examples": len(peer.judged)},
            "verdict": "accepted" if deploy else "rejected", "reason": reason,
            "replaces": current.version if current else None}
