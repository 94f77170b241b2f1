"""A federation run's choices, and their form as Flower's run config.

The coordinator submits these with `flwr run --run-config`; Flower hands them to the
ServerApp and to every peer's ClientApp, so all agree on the adapter's shape and on
how a round trains. The keys are declared in flower_app/pyproject.toml.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from mirador.errors import FederationError
from mirador.settings import FederationConfig
from mirador.training.lora import TARGETS, TrainConfig


@dataclass(frozen=True)
class RoundPlan:
    """What every round does; see `mirador federate --help`."""

    rounds: int = 3
    peers: int = 3
    local_steps: int = 8
    learning_rate: float = 1e-3
    rank: int = 8
    alpha: int = 16
    seed: int = 0
    noise_multiplier: float = 1.0
    clipping_norm: float = 1.0
    delta: float = 1e-5
    round_timeout: float = 900.0
    out_dir: str = ""

    @classmethod
    def from_settings(cls, config: FederationConfig, **changes: Any) -> RoundPlan:
        """The plan `config.yaml`'s federation section describes, with `changes`."""
        base = {name: getattr(config, name) for name in (
            "rounds", "peers", "local_steps", "noise_multiplier", "clipping_norm", "delta",
            "round_timeout")}
        return cls(**{**base, **changes})

    def train_config(self) -> TrainConfig:
        """How each peer trains its local update."""
        return TrainConfig(rank=self.rank, alpha=self.alpha, learning_rate=self.learning_rate,
                           epochs=10_000, max_steps=self.local_steps, seed=self.seed,
                           targets=TARGETS)

    def run_config(self) -> dict[str, Any]:
        """Flower's run config: the fields with '-' for '_'."""
        return {name.replace("_", "-"): value for name, value in asdict(self).items()}

    @classmethod
    def from_run_config(cls, config: dict[str, Any]) -> RoundPlan:
        """The plan back from Flower's run config (unknown keys are an error)."""
        known = {f.name: f.type for f in fields(cls)}
        values = {key.replace("-", "_"): value for key, value in config.items()}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FederationError(f"the run config has keys this Mirador does not know: "
                                  f"{unknown}; peers and coordinator must run the same version")
        return cls(**values)

    def toml_overrides(self) -> str:
        """The run config as `flwr run --run-config` reads it ('k=v k=v', TOML values)."""
        return " ".join(f"{key}={_toml(value)}" for key, value in self.run_config().items())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
