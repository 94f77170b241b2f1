"""The privacy budget and the adapter's flat form: plain arithmetic, no Flower needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mirador.errors import FederationError
from mirador.federation import accounting
from mirador.federation.plan import RoundPlan
from mirador.federation.tensors import difference, from_arrays, nbytes, norm, to_arrays
from mirador.training.lora import LoraWeights


def test_epsilon_is_the_rdp_bound_minimised_over_orders() -> None:
    # brute force over Renyi orders: T a / (2 z^2) + log(1/delta) / (a - 1)
    for z, rounds, delta in [(1.0, 1, 1e-5), (0.8, 10, 1e-6), (3.0, 100, 1e-5)]:
        orders = np.linspace(1.001, 400, 400_000)
        brute = (rounds * orders / (2 * z * z) + math.log(1 / delta) / (orders - 1)).min()
        assert accounting.epsilon(z, rounds, delta) == pytest.approx(brute, rel=1e-4)


def test_epsilon_grows_with_rounds_and_falls_with_noise() -> None:
    assert accounting.epsilon(1.0, 4, 1e-5) > accounting.epsilon(1.0, 1, 1e-5)
    assert accounting.epsilon(2.0, 4, 1e-5) < accounting.epsilon(1.0, 4, 1e-5)
    assert accounting.epsilon(0.0, 1, 1e-5) == math.inf
    assert accounting.epsilon(1.0, 0, 1e-5) == 0.0
    assert accounting.noise_std(1.0, 2.0, 4) == 0.5


def lora(seed: int) -> LoraWeights:
    rng = np.random.default_rng(seed)
    pairs = {(layer, p): (rng.normal(size=(2, 6)).astype(np.float32),
                          rng.normal(size=(6, 2)).astype(np.float32))
             for layer in range(3) for p in ("q_proj", "v_proj")}
    return LoraWeights(2, 4, pairs)


def test_an_adapter_survives_its_flat_form() -> None:
    weights = lora(0)
    back = from_arrays(to_arrays(weights), 2, 4, ("v_proj", "q_proj"))
    assert back.pairs.keys() == weights.pairs.keys()
    for key, (a, b) in weights.pairs.items():
        assert np.array_equal(back.pairs[key][0], a) and np.array_equal(back.pairs[key][1], b)
    assert nbytes(to_arrays(weights)) == 3 * 2 * 2 * 12 * 4


def test_a_flat_form_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(FederationError, match="targets"):
        from_arrays(to_arrays(lora(0))[:-1], 2, 4, ("q_proj", "v_proj"))


def test_an_update_is_a_difference_and_its_norm_is_over_everything() -> None:
    a, b = to_arrays(lora(0)), to_arrays(lora(1))
    flat = np.concatenate([x.ravel() for x in difference(a, b)])
    assert norm(difference(a, b)) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-6)


def test_a_plan_round_trips_through_flowers_run_config() -> None:
    plan = RoundPlan(rounds=2, noise_multiplier=0.5, out_dir='/tmp/a "b"')
    assert RoundPlan.from_run_config(plan.run_config()) == plan
    assert 'out-dir="/tmp/a \\"b\\""' in plan.toml_overrides()
    with pytest.raises(FederationError, match="same version"):
        RoundPlan.from_run_config({**plan.run_config(), "typo": 1})
