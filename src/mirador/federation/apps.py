"""The Flower apps: a ServerApp averaging the peers' adapters, a ClientApp training one.

The server runs Flower's legacy-strategy workflow: FedAvg over the adapter's arrays,
wrapped in DifferentialPrivacyClientSideFixedClipping (the peers clip, the server adds
Gaussian noise to the sum), inside a SecAggPlusWorkflow so the server only ever holds
the masked sum. Each peer's ClientApp runs `secaggplus_mod` around `fixedclipping_mod`
around the peer's own training. This module imports Flower: only Flower's processes
(flwr-serverapp, flwr-clientapp) import it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import Client, ClientApp, NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.common import Context, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, Strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from mirador.errors import FederationError

from . import accounting
from .adopt import adopt
from .peer import Peer, held_out_loss, local_update, open_peer, shared_adapter, start_arrays
from .plan import RoundPlan

# ---- the peer ---------------------------------------------------------------------------


class FederatedPeer(NumPyClient):
    """A Mirador home taking part: trains and judges the shared adapter on its own data."""

    def __init__(self, node: dict[str, Any], plan: RoundPlan) -> None:
        self.node = node
        self.plan = plan
        self._peer: Peer | None = None

    @property
    def peer(self) -> Peer:
        if self._peer is None:  # loaded on first use: SecAgg+'s key stages need no model
            cache = self.node.get("cache")
            self._peer = open_peer(Path(str(self.node["home"])), str(self.node["persona"]),
                                   Path(str(cache)) if cache else None, self.plan)
        return self._peer

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return start_arrays(self.peer, self.plan)

    def fit(self, parameters: list[np.ndarray],
            config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        arrays = local_update(self.peer, parameters, self.plan, int(config["round"]))
        return arrays, 1, {}  # weight 1: every peer counts the same; the count stays here

    def evaluate(self, parameters: list[np.ndarray],
                 config: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
        round_number = int(config["round"])
        loss = held_out_loss(self.peer, parameters, self.plan, round_number)
        adopt(self.peer, shared_adapter(self.peer), loss, round_number)
        return loss, 1, {"held_out_loss": loss}


def _client(context: Context) -> Client:
    plan = RoundPlan.from_run_config(dict(context.run_config))
    return FederatedPeer(dict(context.node_config), plan).to_client()


client_app = ClientApp(client_fn=_client, mods=[secaggplus_mod, fixedclipping_mod])

# ---- the coordinator ----------------------------------------------------------------------


class Recorder(Strategy):
    """Wraps the DP strategy: writes the per-round log and each round's shared adapter.

    SecAgg+ has already rebuilt the sum from the peers that stayed; a peer that dropped
    is counted in the log but does not void the round (Flower's DP wrapper would)."""

    def __init__(self, inner: Strategy, plan: RoundPlan, out: Path) -> None:
        super().__init__()
        self.inner, self.plan, self.out = inner, plan, out
        self.began: dict[int, float] = {}
        self.entries: dict[int, dict[str, Any]] = {}

    def initialize_parameters(self, client_manager: Any) -> Parameters | None:
        return self.inner.initialize_parameters(client_manager)

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: Any) -> Any:
        if server_round == 1:
            _save(self.out / "round-0.npz", parameters)
        self.began[server_round] = time.perf_counter()
        chosen = self.inner.configure_fit(server_round, parameters, client_manager)
        for _, fit_ins in chosen:
            fit_ins.config["round"] = server_round
        return chosen

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        parameters, metrics = self.inner.aggregate_fit(server_round, results, [])
        if parameters is not None:
            # SecAgg+ dequantizes to float64; the adapter (and what peers send back) is float32
            parameters = ndarrays_to_parameters(
                [a.astype(np.float32) for a in parameters_to_ndarrays(parameters)])
            _save(self.out / f"round-{server_round}.npz", parameters)
        self.entries[server_round] = self._entry(server_round, results, failures, parameters)
        return parameters, metrics

    def _entry(self, server_round: int, results: Any, failures: Any,
               parameters: Parameters | None) -> dict[str, Any]:
        plan = self.plan
        # what each peer hands Flower: its adapter's arrays as float32
        size = 4 * sum(a.size for a in parameters_to_ndarrays(parameters)) if parameters else 0
        return {"round": server_round, "peers": len(results), "failures": len(failures),
                "aggregated": parameters is not None, "update_bytes_per_peer": size,
                "fit_seconds": round(time.perf_counter() - self.began[server_round], 2),
                "noise_std": accounting.noise_std(plan.noise_multiplier, plan.clipping_norm,
                                                  plan.peers),
                "epsilon_round": accounting.epsilon(plan.noise_multiplier, 1, plan.delta),
                "epsilon_total": accounting.epsilon(plan.noise_multiplier, server_round,
                                                    plan.delta),
                "delta": plan.delta}

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: Any) -> Any:
        chosen = self.inner.configure_evaluate(server_round, parameters, client_manager)
        for _, evaluate_ins in chosen:
            evaluate_ins.config["round"] = server_round
        return chosen

    def aggregate_evaluate(self, server_round: int, results: Any, failures: Any) -> Any:
        loss, metrics = self.inner.aggregate_evaluate(server_round, results, failures)
        entry = self.entries.pop(server_round, {"round": server_round})
        entry.update(held_out_loss=loss, evaluated_by=len(results),
                     round_seconds=round(time.perf_counter() - self.began[server_round], 2))
        with (self.out / "rounds.jsonl").open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        return loss, metrics

    def evaluate(self, server_round: int, parameters: Parameters) -> Any:
        return self.inner.evaluate(server_round, parameters)


def _save(path: Path, parameters: Parameters) -> None:
    np.savez(path, *parameters_to_ndarrays(parameters))


def strategy_for(plan: RoundPlan, out: Path) -> Recorder:
    """FedAvg over every peer, clipped and noised by Flower's DP wrapper, recorded."""
    # Flower's minimums: a round goes on with all but one peer (SecAgg+ needs two)
    least = max(2, plan.peers - 1)
    fedavg = FedAvg(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=least,
                    min_evaluate_clients=least, min_available_clients=least,
                    accept_failures=True)
    private = DifferentialPrivacyClientSideFixedClipping(
        fedavg, noise_multiplier=plan.noise_multiplier, clipping_norm=plan.clipping_norm,
        num_sampled_clients=plan.peers)
    return Recorder(private, plan, out)


server_app = ServerApp()


@server_app.main()
def _coordinate(grid: Grid, context: Context) -> None:
    plan = RoundPlan.from_run_config(dict(context.run_config))
    if not plan.out_dir:
        raise FederationError("the run config has no out-dir: the coordinator must say where "
                              "the rounds' log and adapters go (mirador federate sets it)")
    out = Path(plan.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    legacy = LegacyContext(context=context, strategy=strategy_for(plan, out),
                           config=ServerConfig(num_rounds=plan.rounds,
                                               round_timeout=plan.round_timeout))
    # n peers hold shares of each other's masks; any n - 1 can unmask a dropped one
    # max_weight 1: every peer's weight is 1, and SecAgg+ scales an update by
    # weight / max_weight before quantizing it (Flower's default, 1000, would cost the
    # adapter three digits of precision: measured as extra noise by tests/federation)
    secure = SecAggPlusWorkflow(num_shares=plan.peers if plan.peers > 2 else 1.0,
                                reconstruction_threshold=max(2, plan.peers - 1),
                                max_weight=1.0, timeout=plan.round_timeout)
    DefaultWorkflow(fit_workflow=secure)(grid, legacy)
