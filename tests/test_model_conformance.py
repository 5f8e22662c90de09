"""The conformance suite every registered cell passes (rnngrad.models.MODELS; the vanilla RNN with each
activation, the LSTM with and without a forget-gate bias): built from the seed alone, logged weights that exist,
the per-step form that is logged equal to the path that trains, contributions C_{t,k} that add up to autograd's
gradient, and step Jacobians equal to central finite differences. A new module in rnngrad/models/ gets these
tests for free."""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch

from rnngrad import decompose, tasks
from rnngrad.losses import step_loss
from rnngrad.models import ACTIVATIONS, MODELS, RecurrentModel, build_model

CELLS = [(name, {}) for name in MODELS if name != "rnn"]
CELLS += [("rnn", {"activation_name": name}) for name in ACTIVATIONS] + [("lstm", {"forget_bias": 1.0})]
IDS = [f"{name}-{'-'.join(map(str, kwargs.values()))}" if kwargs else name for name, kwargs in CELLS]


def cell_model(model: str, task: str, hidden: int, seed: int, **kwargs):
    return build_model(model, tasks.n_inputs(task), hidden, tasks.n_outputs(task), seed=seed, **kwargs).double()


@pytest.mark.parametrize(("model", "kwargs"), CELLS, ids=IDS)
def test_built_from_the_seed_alone_and_names_its_logged_weights(model, kwargs):
    first, again = (cell_model(model, "copy", 5, seed=3, **kwargs) for _ in range(2))
    other = cell_model(model, "copy", 5, seed=4, **kwargs)
    state = first.state_dict()
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in state.items())
    assert any(not torch.equal(value, other.state_dict()[key]) for key, value in state.items())
    names = dict(first.named_parameters())
    assert first.recurrent_weights and all(name in names for name in first.recurrent_weights.values())
    assert all(name in names for name in first.input_weights)
    assert {"V", "c"} <= set(names) and first.hidden == 5
    assert first.float()(torch.zeros(2, 3, tasks.n_inputs("copy"))).dtype == torch.float32


@pytest.mark.parametrize(("model", "kwargs"), CELLS, ids=IDS)
@pytest.mark.parametrize("task", ["copy", "adding"])
def test_contributions_add_up_to_autograds_full_gradient(model, kwargs, task):
    """sum_k C_{t,k} = dL_t/dtheta for every logged weight (recurrent and input), at two target steps."""
    net = cell_model(model, task, 6, seed=1, **kwargs)
    x, y, mask = make_batch(task, batch=3, steps=11, seed=2)
    steps = [4, 11]
    terms, state_grads = decompose.contribution_terms(net, x, decompose.task_loss(task, y, mask), steps)
    params = dict(net.named_parameters())
    names = [*net.recurrent_weights.values(), *net.input_weights]
    for t, term, grads in zip(steps, terms, state_grads, strict=True):
        hidden = net.states(x[:, :t])
        loss = step_loss(task, net.readout(hidden[:, t - 1]), y[:, t - 1], mask[:, t - 1])
        full = torch.autograd.grad(loss, [params[name] for name in names])
        for name, expected in zip(names, full, strict=True):
            assert term[name].shape[0] == t
            assert torch.allclose(term[name].sum(0), expected, rtol=1e-10, atol=1e-14), name
        assert all(g.shape[0] == t for g in grads)
    table = decompose.contribution_table(net, x, decompose.task_loss(task, y, mask), steps)
    assert set(table.weight) == set(net.recurrent_weights)
    assert (table.distance == table.t - table.k).all() and (table.dLdh_norm > 0).all()


def flat_step(net, x_t, flat, sizes):
    """One step of one sequence on the concatenated state."""
    state = tuple(part[None] for part in flat.split(sizes))
    return torch.cat([part[0] for part in net.step(x_t[None], state)])


@pytest.mark.parametrize(("model", "kwargs"), CELLS, ids=IDS)
def test_step_jacobians_equal_central_differences(model, kwargs):
    net = cell_model(model, "adding", 4, seed=5, **kwargs)
    x, _, _ = make_batch("adding", batch=2, steps=6, seed=6)
    states = decompose.state_sequence(net, x)
    jac = decompose.step_jacobians(net, x, states)
    sizes = [part.shape[-1] for part in states]
    n = sum(sizes)
    assert jac.shape == (2, 6, n, n)
    eps = 1e-6
    for s in range(2):
        for j in (0, 3, 5):
            base = torch.cat([part[s, j] for part in states])
            numeric = torch.empty(n, n, dtype=torch.float64)
            for i in range(n):
                shift = torch.zeros(n, dtype=torch.float64)
                shift[i] = eps
                ahead, behind = (flat_step(net, x[s, j], base + sign * shift, sizes) for sign in (1, -1))
                numeric[:, i] = (ahead - behind) / (2 * eps)
            assert torch.allclose(jac[s, j], numeric, rtol=1e-6, atol=1e-8), (s, j)


@pytest.mark.parametrize(("model", "kwargs"), CELLS, ids=IDS)
def test_fused_training_path_equals_the_per_step_cell(model, kwargs):
    """The fused module that trains and the per-step form that is logged give the same outputs and gradients."""
    fused = cell_model(model, "copy", 5, seed=7, **kwargs)
    x, y, mask = make_batch("copy", batch=3, steps=12, seed=8)
    looped = RecurrentModel.states(fused, x)  # the base class's loop over the per-step cell
    assert torch.allclose(fused.states(x), looped, rtol=1e-12, atol=1e-14)
    params = list(fused.parameters())
    grads = [
        torch.autograd.grad(step_loss("copy", fused.readout(h[:, -1]), y[:, -1], mask[:, -1]), params)
        for h in (fused.states(x), looped)
    ]
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)
