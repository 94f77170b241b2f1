"""A round's shared adapter becomes a version of the peer's adapters, deployed only if it
beats the deployed one, on real SmolLM2 under llama.cpp (no Flower: adopt.py needs none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirador.federation.adopt import adopt
from mirador.federation.peer import (
    held_out_loss,
    local_update,
    open_peer,
    peer_log_path,
    shared_adapter,
    start_arrays,
)
from mirador.federation.plan import RoundPlan
from mirador.learning.adapters import AdapterStore
from mirador.training.trainer import file_sha256
from tests.conftest import VERIFIED_IN
from tests.federation.harness import make_peer_homes

PLAN = RoundPlan(rounds=1, peers=1, local_steps=6)


@pytest.mark.timeout(1200)
def test_a_better_round_is_deployed_a_worse_one_kept_and_rollback_undoes_it(
        tmp_path: Path, smollm_gguf: Path) -> None:
    home = make_peer_homes(tmp_path, 3, VERIFIED_IN)[0]
    peer = open_peer(home, "quick", tmp_path / "cache", PLAN)
    store = AdapterStore(home, "quick")
    start = start_arrays(peer, PLAN)  # B = 0: the base model's loss exactly

    trained = local_update(peer, start, PLAN, 1)
    better = adopt(peer, shared_adapter(peer), held_out_loss(peer, trained, PLAN, 1), 1)
    assert better.deployed, better.reason
    assert store.deployed() == better.version
    meta = better.version.meta
    assert meta["source"] == "federation" and meta["round"] == 1
    assert meta["base_sha256"] == file_sha256(smollm_gguf)
    loss = meta["metrics"]
    assert loss["held_out_loss_after"] < loss["held_out_loss_before"]

    worse = adopt(peer, shared_adapter(peer), held_out_loss(peer, start, PLAN, 2), 2)
    assert not worse.deployed and "not better than the deployed adapter" in worse.reason
    assert store.deployed() == better.version  # kept, not deployed
    assert [v.version for v in store.versions()] == [better.version.version,
                                                    worse.version.version]
    events = [json.loads(line) for line in peer_log_path(peer).read_text().splitlines()]
    last = events[-1]
    assert (last["round"], last["event"], last["version"], last["reason"]) == (
        2, "kept", worse.version.version, worse.reason)

    assert store.rollback() is None  # `mirador adapters rollback`: back to the base model
    assert store.deployed() is None
