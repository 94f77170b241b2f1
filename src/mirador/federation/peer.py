"""One peer's local work: its own examples, a local update, its held-out loss.

Nothing here talks to the network; apps.py hands the results to Flower. The base model
is read from its GGUF into torch once and kept dequantized under the peer's cache
directory, because Flower runs each message in a fresh process and reading the GGUF
takes half a minute on a small CPU where the cached copy takes two seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirador.errors import FederationError
from mirador.settings import load_settings
from mirador.training import judge
from mirador.training.examples import gather, split
from mirador.training.gguf_lora import write_adapter
from mirador.training.lora import Encoded, TorchBase, encode, fresh, load_base, train
from mirador.training.trainer import file_sha256, persona_base

from .plan import RoundPlan
from .tensors import difference, from_arrays, nbytes, norm, to_arrays

HELD_OUT = 0.25
LOG_NAME = "rounds.jsonl"


@dataclass
class Peer:
    """A peer ready to work: its base in torch and its examples, encoded."""

    home: Path
    persona: str
    gguf: Path
    base: TorchBase
    train: list[Encoded]
    held: list[Encoded]

    @property
    def folder(self) -> Path:
        return self.home / "federation"

    @property
    def judged(self) -> list[Encoded]:
        """The examples an adapter is judged on: the held-out ones (all, if none are)."""
        return self.held or self.train


def open_peer(home: Path, persona: str, cache: Path | None, plan: RoundPlan) -> Peer:
    """The peer whose Mirador home is `home`: its rated examples, split by a fixed seed."""
    settings = load_settings(home)
    resolved, gguf = persona_base(settings, persona)
    found = gather(settings)
    if len(found) < 2:
        raise FederationError(f"the peer at {home} has {len(found)} rated exchange(s); it "
                              "needs at least 2 (one to train on, one held out): rate more "
                              "answers with `mirador rate 5`")
    training, held = split(found, HELD_OUT, plan.seed)
    base = cached_base(gguf, cache or home / "federation" / "base-cache")
    cut = plan.train_config().max_tokens
    encoded = [[encode(base, resolved.system, e.query, e.answer, cut) for e in part]
               for part in (training, held)]
    return Peer(home, persona, gguf, base, encoded[0], encoded[1])


def cached_base(gguf: Path, cache: Path) -> TorchBase:
    """The GGUF's base in torch, from a dequantized copy kept under `cache` (made once)."""
    import torch
    from safetensors.torch import load_model, save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = cache / file_sha256(gguf)[:16]
    if not (folder / "model.safetensors").exists():
        base = load_base(gguf, threads=1)
        staging = Path(tempfile.mkdtemp(prefix=".base-", dir=_made(cache)))
        save_model(base.model, str(staging / "model.safetensors"))
        base.model.config.to_json_file(str(staging / "config.json"))
        base.tokenizer.save_pretrained(str(staging))
        _publish(staging, folder)
        return base
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    config = AutoConfig.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    load_model(model, str(folder / "model.safetensors"))
    model.eval()
    return TorchBase(gguf, model, tokenizer)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _publish(staging: Path, folder: Path) -> None:
    """Move a finished copy into place; another process may have got there first."""
    try:
        os.rename(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def start_arrays(peer: Peer, plan: RoundPlan) -> list[np.ndarray]:
    """The adapter a federation starts from: peft's seeded LoRA (B = 0: no change)."""
    return to_arrays(fresh(peer.base, plan.train_config()))


def local_update(peer: Peer, start: Sequence[np.ndarray], plan: RoundPlan,
                 round_number: int) -> list[np.ndarray]:
    """Train `plan.local_steps` steps from the shared adapter; the new adapter's arrays."""
    config = plan.train_config()
    if not peer.train:
        raise FederationError(f"the peer at {peer.home} has no examples to train on")
    log(peer, {"round": round_number, "event": "training", "examples": len(peer.train)})
    began = time.perf_counter()
    weights = train(peer.base, peer.train, config,
                    start=from_arrays(start, config.rank, config.alpha, config.targets))
    arrays = to_arrays(weights)
    update = difference(arrays, start)
    log(peer, {"round": round_number, "event": "trained", "seconds":
               round(time.perf_counter() - began, 2), "update_bytes": nbytes(update),
               "update_norm": round(norm(update), 4), "clipped_to": plan.clipping_norm})
    _keep(peer, round_number, update)
    return arrays


def _keep(peer: Peer, round_number: int, update: list[np.ndarray]) -> None:
    """The peer's own copy of its update before clipping (never sent as is)."""
    folder = _made(peer.folder / "updates")
    np.savez(folder / f"round-{round_number}.npz", *update)


def held_out_loss(peer: Peer, arrays: Sequence[np.ndarray], plan: RoundPlan,
                  round_number: int) -> float:
    """The peer's held-out answers' loss under llama.cpp with the shared adapter; the
    adapter is kept as `<home>/federation/adapter.gguf` (apps.py then adopts it: adopt.py)."""
    config = plan.train_config()
    weights = from_arrays(arrays, config.rank, config.alpha, config.targets)
    adapter = write_gguf(peer.base, weights, shared_adapter(peer))
    loss = judge.answer_loss(peer.gguf, adapter, peer.judged)
    log(peer, {"round": round_number, "event": "evaluated", "held_out_loss": round(loss, 4),
               "examples": len(peer.held)})
    return loss


def shared_adapter(peer: Peer) -> Path:
    """Where the peer keeps the last round's shared adapter, as GGUF."""
    return _made(peer.folder) / "adapter.gguf"


def write_gguf(base: TorchBase, weights: Any, path: Path) -> Path:
    """The LoRA as a llama.cpp adapter for `base`."""
    return write_adapter(weights, path, architecture=base.architecture, heads=base.heads)


def peer_log_path(peer: Peer) -> Path:
    """The peer's per-round log (`<home>/federation/rounds.jsonl`)."""
    return _made(peer.folder) / LOG_NAME


def log(peer: Peer, entry: dict[str, Any]) -> None:
    """One line of the peer's per-round log."""
    with peer_log_path(peer).open("a") as handle:
        handle.write(json.dumps({"at": round(time.time(), 3), **entry}) + "\n")
