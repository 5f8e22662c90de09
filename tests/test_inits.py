"""The papers' initialisations: sparse W at a given spectral radius, and N(0, sigma^2) input and readout weights."""

from __future__ import annotations

import math

import pytest
import torch

from rnngrad.models import LSTM, VanillaRNN, glorot_bound, input_weights, recurrent_init


@pytest.mark.parametrize(("hidden", "nonzero", "radius"), [(50, 15, 0.95), (8, 3, 1.5), (4, 15, 0.5)])
def test_sparse_init_keeps_k_weights_a_unit_at_the_radius(hidden, nonzero, radius):
    w = recurrent_init("sparse", radius, hidden, torch.Generator().manual_seed(3), nonzero)
    assert w.dtype == torch.float64
    assert ((w != 0).sum(0) == min(nonzero, hidden)).all()  # each unit sends min(k, H) weights (authors' code)
    assert float(torch.linalg.eigvals(w).abs().max()) == pytest.approx(radius, rel=1e-12)
    again = recurrent_init("sparse", radius, hidden, torch.Generator().manual_seed(3), nonzero)
    assert torch.equal(w, again)


def test_gaussian_input_and_readout_weights_have_the_paper_s_spread():
    model = VanillaRNN(200, 300, 100, "tanh", "sparse", 0.95, seed=0, input_init=0.01, readout_init=0.1)
    assert model.U.std().item() == pytest.approx(0.01, rel=0.02)
    assert model.V.std().item() == pytest.approx(0.1, rel=0.02)
    assert model.b.abs().sum() == 0 and model.c.abs().sum() == 0  # biases 0 (Pascanu et al. 2013)


def test_default_input_and_readout_weights_are_today_s():
    """fan_in draws uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) after W from the same generator, as before."""
    model = VanillaRNN(2, 8, 1, "tanh", "orthogonal", 1.0, seed=5)
    generator = torch.Generator().manual_seed(5)
    recurrent_init("orthogonal", 1.0, 8, generator)
    u = (torch.rand((8, 2), generator=generator, dtype=torch.float64) * 2 - 1) / math.sqrt(2)
    v = (torch.rand((1, 8), generator=generator, dtype=torch.float64) * 2 - 1) / math.sqrt(8)
    assert torch.equal(model.U, u.float()) and torch.equal(model.V, v.float())


def test_glorot_input_and_readout_weights_have_arjovsky_s_bound_and_variance():
    """glorot: uniform(-sqrt(6/(fan_in+fan_out)), +), Arjovsky et al.'s initialize_matrix (models.py lines 6-12):
    every weight within the bound, the largest near it, the variance 2/(fan_in+fan_out)."""
    assert glorot_bound((128, 2)) == math.sqrt(6 / 130) and glorot_bound((1, 128)) == math.sqrt(6 / 129)
    model = VanillaRNN(200, 300, 100, "tanh", "gaussian", 1.0, seed=0, input_init="glorot", readout_init="glorot")
    for weights, fans in ((model.U, 500), (model.V, 400)):
        bound = math.sqrt(6 / fans)
        assert weights.abs().max().item() <= bound and weights.abs().max().item() > 0.999 * bound
        assert weights.double().var().item() == pytest.approx(2 / fans, rel=0.02)
        assert abs(weights.double().mean().item()) < 0.01 * bound


def test_glorot_weights_are_drawn_from_the_run_s_generator():
    """Same seed, same weights; the draw is uniform(-a, a) from the run's generator after W (no global state)."""
    torch.manual_seed(123)
    model = VanillaRNN(2, 8, 1, "tanh", "orthogonal", 1.0, seed=5, input_init="glorot", readout_init="glorot")
    torch.manual_seed(456)
    again = VanillaRNN(2, 8, 1, "tanh", "orthogonal", 1.0, seed=5, input_init="glorot", readout_init="glorot")
    generator = torch.Generator().manual_seed(5)
    recurrent_init("orthogonal", 1.0, 8, generator)
    u = (torch.rand((8, 2), generator=generator, dtype=torch.float64) * 2 - 1) * math.sqrt(6 / 10)
    v = (torch.rand((1, 8), generator=generator, dtype=torch.float64) * 2 - 1) * math.sqrt(6 / 9)
    assert torch.equal(model.U, u.float()) and torch.equal(model.V, v.float())
    assert torch.equal(model.U, again.U) and torch.equal(model.V, again.V)
    lstm = LSTM(2, 8, 1, seed=5, readout_init="glorot")
    assert lstm.V.abs().max().item() <= math.sqrt(6 / 9)


@pytest.mark.parametrize("bad", ["xavier", 0.0, -0.1, float("nan"), True])
def test_bad_input_init_names_the_key(bad):
    with pytest.raises(ValueError, match="input_init"):
        input_weights(bad, (2, 2), torch.Generator())


def test_sparse_init_needs_a_weight_a_unit():
    with pytest.raises(ValueError, match="init_nonzero"):
        recurrent_init("sparse", 0.95, 4, torch.Generator(), 0)
