"""Pascanu et al. 2013's regulariser Omega as they trained it (eq. 10, squared norms) against an independent autograd
computation (float64), and its closed-form cases: 0 where every backward step keeps the error's norm,
(c^2 - 1)^2 where every step scales it by c (eq. 9's plain norms give (c - 1)^2), at least 0.99^2 where every step
shrinks it tenfold, dropped steps counted nowhere."""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch

from rnngrad.losses import masked_loss
from rnngrad.models import ACTIVATIONS, VanillaRNN
from rnngrad.regularizer import BOUND, backprop, omega

ACTS = tuple(ACTIVATIONS)


def make_model(act: str, hidden: int = 8, scale: float = 1.0, seed: int = 0) -> VanillaRNN:
    return VanillaRNN(2, hidden, 1, act, "orthogonal", scale, seed=seed).double()


def readout_grads(model: VanillaRNN, x, y, mask):
    """(states, dE/dh_t from the readout alone) as training would take them from VanillaRNN.states."""
    states = model.states(x)
    states.retain_grad()
    masked_loss("adding", states @ model.V.T + model.c, y, mask).backward()
    return states.detach(), states.grad


def autograd_pre_activations(model: VanillaRNN, x, y, mask):
    """(a_1..a_T [B, T, H], dE/da_t [B, T, H]) of the loss from a Python loop of the recurrence, by autograd."""
    f = model.act.f
    h = x.new_zeros(x.shape[0], model.hidden)
    pre, hs = [], []
    for t in range(x.shape[1]):
        a = h @ model.W.T + x[:, t] @ model.U.T + model.b
        h = f(a)
        pre.append(a)
        hs.append(h)
    loss = masked_loss("adding", torch.stack(hs, 1) @ model.V.T + model.c, y, mask)
    grads = torch.autograd.grad(loss, pre)
    return torch.stack(pre, 1).detach(), torch.stack(grads, 1)


def autograd_omega(W, pre, deltas, act: str, squared: bool = True):  # noqa: N803
    """Eq. 10 (``squared``; eq. 9's plain norms otherwise) written directly: x_k = a_k, dE/dx_{k+1} = delta_{k+1}
    and f'(a_k) detached constants, W the variable, differentiated by autograd. Returns (value, gradient, kept
    pairs, pairs)."""
    W = W.detach().clone().requires_grad_()  # noqa: N806
    a = pre.detach().requires_grad_()
    (slopes,) = torch.autograd.grad(ACTIVATIONS[act].f(a).sum(), a)  # f'(a_k), elementwise, a constant
    up = deltas[:, 1:].detach()
    back = torch.einsum("bki,ij,bkj->bkj", up, W, slopes[:, :-1])  # dE/dx_{k+1} [W diag f'(x_k)]
    up_sq = up.square().sum(-1)
    kept = up_sq >= 1e-20
    up_sq = torch.where(kept, up_sq, 1.0)
    if squared:
        ratio = back.square().sum(-1) / up_sq  # ||n||^2 / ||delta||^2
    else:  # vector_norm's gradient at n = 0 is 0, where sqrt's is NaN
        ratio = torch.linalg.vector_norm(back, dim=-1) / up_sq.sqrt()
    value = torch.where(kept, (ratio - 1) ** 2, 0.0).sum() / kept.sum()
    (grad,) = torch.autograd.grad(value, W)
    return value.detach(), grad, int(kept.sum()), int(kept.numel())


def case(act: str, hidden: int = 8, batch: int = 5, steps: int = 12, scale: float = 1.0, last_only: bool = False):
    model = make_model(act, hidden, scale)
    x, y, mask = make_batch("adding", batch, steps, seed=1)
    if last_only:
        mask[:, :-1] = False
    return model, x, y, mask


@pytest.mark.parametrize("act", ACTS)
def test_deltas_are_autograd_gradients_of_the_pre_activations(act):
    model, x, y, mask = case(act)
    states, grad_states = readout_grads(model, x, y, mask)
    deltas, _, _ = backprop(model.W, states, grad_states, act)
    _, expected = autograd_pre_activations(model, x, y, mask)
    torch.testing.assert_close(deltas.transpose(0, 1), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_explicit_gradient_is_autograd_of_the_detached_expression(act, scale):
    model, x, y, mask = case(act, scale=scale)
    states, grad_states = readout_grads(model, x, y, mask)
    value, grad = omega(model.W, states, grad_states, act)
    pre, deltas = autograd_pre_activations(model, x, y, mask)
    expected_value, expected_grad, _, _ = autograd_omega(model.W, pre, deltas, act)
    assert value > 0
    torch.testing.assert_close(value, expected_value, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(("hidden", "batch", "steps"), [(3, 1, 7), (8, 5, 12), (50, 20, 50)])
def test_value_and_gradient_are_eq_10_at_several_shapes(act, hidden, batch, steps):
    """Up to the paper's size (H = 50, B = 20, T = 50): the value is eq. 10's expression and the gradient its
    autograd gradient with respect to W; eq. 9's plain-norm gradient is far from it."""
    model, x, y, mask = case(act, hidden, batch, steps, scale=1.2)
    states, grad_states = readout_grads(model, x, y, mask)
    value, grad = omega(model.W, states, grad_states, act)
    pre, deltas = autograd_pre_activations(model, x, y, mask)
    expected_value, expected_grad, _, _ = autograd_omega(model.W, pre, deltas, act)
    scale = float(expected_grad.abs().max())
    torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12 * scale)
    _, plain_grad, _, _ = autograd_omega(model.W, pre, deltas, act, squared=False)
    assert float((grad - plain_grad).abs().max()) > 1e-3 * scale


def test_every_step_scaling_the_error_by_c_gives_eq_10_closed_form():
    """relu with W = c P (P a permutation) and every unit active: each backward step is c P^T, so every ratio
    ||n||^2 / ||delta||^2 is c^2, Omega = (c^2 - 1)^2 and d/ds Omega(sW) at s = 1, <dOmega/dW, W>, is
    4 c^2 (c^2 - 1). Eq. 9's plain norms would give (c - 1)^2 and 2 c (c - 1) (0.25 and 1.5 at c = 1.5)."""
    c = 1.5
    model, x, y, mask = case("relu", hidden=6, steps=15)
    permutation = torch.eye(6, dtype=torch.float64)[torch.randperm(6, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        model.W.copy_(c * permutation)
        model.U.abs_()
        model.b.fill_(0.5)
    states, grad_states = readout_grads(model, x, y, mask)
    assert (states > 0).all()
    value, grad = omega(model.W, states, grad_states, "relu")
    assert float(value) == pytest.approx((c**2 - 1) ** 2, rel=1e-12)
    assert float((grad * model.W.detach()).sum()) == pytest.approx(4 * c**2 * (c**2 - 1), rel=1e-12)


def test_steps_whose_error_has_vanished_are_dropped():
    """Sigmoid, loss at the last step of 300: the error shrinks at least fourfold a step back, so the early steps
    fall under the bound (some exactly 0, which would make 0/0 without the drop)."""
    model, x, y, mask = case("sigmoid", steps=300, last_only=True)
    states, grad_states = readout_grads(model, x, y, mask)
    value, grad = omega(model.W, states, grad_states, "sigmoid")
    pre, deltas = autograd_pre_activations(model, x, y, mask)
    expected_value, expected_grad, n_kept, n_pairs = autograd_omega(model.W, pre, deltas, "sigmoid")
    assert 0 < n_kept < n_pairs // 2
    assert (deltas.square().sum(-1) == 0).any()
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    torch.testing.assert_close(value, expected_value, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("act", ACTS)
def test_steps_after_the_last_loss_count_nowhere(act):
    """Beyond the last loss step every delta is 0: Omega and its gradient are those of the sequence cut there
    (a mean over all pairs instead of the kept ones would differ)."""
    model, x, y, mask = case(act, steps=20)
    mask[:, 8:] = False
    states, grad_states = readout_grads(model, x, y, mask)
    assert (grad_states[:, 8:] == 0).all()
    full = omega(model.W, states, grad_states, act)
    cut = omega(model.W, states[:, :8], grad_states[:, :8], act)
    torch.testing.assert_close(full, cut, rtol=1e-13, atol=0)


def test_tiny_errors_are_all_dropped_and_the_scale_of_the_error_does_not_matter():
    model, x, y, mask = case("tanh")
    states, grad_states = readout_grads(model, x, y, mask)
    value, grad = omega(model.W, states, grad_states, "tanh")
    scaled = omega(model.W, states, 1e3 * grad_states, "tanh")
    torch.testing.assert_close(scaled, (value, grad), rtol=1e-12, atol=0)
    deltas, _, _ = backprop(model.W, states, 1e-12 * grad_states, "tanh")
    assert deltas.square().sum(-1).max() < BOUND
    tiny_value, tiny_grad = omega(model.W, states, 1e-12 * grad_states, "tanh")
    assert tiny_value == 0 and (tiny_grad == 0).all()


def test_omega_is_zero_where_every_step_keeps_the_norm():
    """relu with W a permutation (orthogonal) and every unit active: each backward step is W^T, an isometry."""
    model, x, y, mask = case("relu", hidden=6, steps=15)
    with torch.no_grad():
        model.W.copy_(torch.eye(6, dtype=torch.float64)[torch.randperm(6, generator=torch.Generator().manual_seed(0))])
        model.U.abs_()
        model.b.fill_(0.5)
    states, grad_states = readout_grads(model, x, y, mask)
    assert (states > 0).all()
    value, grad = omega(model.W, states, grad_states, "relu")
    assert abs(float(value)) < 1e-28
    torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-13)


def test_contracting_tanh_is_penalised_and_its_gradient_grows_W():  # noqa: N802
    """tanh, W = 0.1 Q: every norm ratio is at most 0.1 |f'| <= 0.1, its square at most 0.01, so
    Omega >= 0.99^2; Omega(sW) falls as s grows."""
    model, x, y, mask = case("tanh", scale=0.1)
    states, grad_states = readout_grads(model, x, y, mask)
    value, grad = omega(model.W, states, grad_states, "tanh")
    assert value >= 0.99**2
    assert (grad * model.W.detach()).sum() < 0


def test_a_step_with_every_relu_off_counts_one_and_adds_no_gradient():
    """n = 0 at a step: its term is (0 - 1)^2 = 1 and its gradient 4 (0 - 1) delta (n * f')^T / ... = 0, with no
    special case (eq. 10 never divides by ||n||)."""
    model, x, y, mask = case("relu")
    states, grad_states = readout_grads(model, x, y, mask)
    states[:, 4] = 0.0  # h_5 = 0: f'(a_5) = 0, so the error reaches a_5 with norm 0 whatever W is
    value, grad = omega(model.W, states, grad_states, "relu")
    deltas, _, _ = backprop(model.W, states, grad_states, "relu")
    # relu: f'(h) = f'(a) (1 where a > 0, else 0), so the states stand in for the pre-activations
    expected_value, expected_grad, _, _ = autograd_omega(model.W, states, deltas.transpose(0, 1), "relu")
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(value, expected_value, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-10)


def test_float32_matches_float64():
    model, x, y, mask = case("tanh", hidden=16, batch=8, steps=30, scale=1.1)
    states, grad_states = readout_grads(model, x, y, mask)
    value, grad = omega(model.W, states, grad_states, "tanh")
    value32, grad32 = omega(model.W.float(), states.float(), grad_states.float(), "tanh")
    assert value32.dtype == grad32.dtype == torch.float32
    torch.testing.assert_close(value32.double(), value, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad32.double(), grad, rtol=0, atol=1e-5 * float(grad.abs().max()))


def test_no_graph_and_a_clear_error_for_an_unknown_activation():
    model, x, y, mask = case("tanh")
    states = model.states(x)  # still attached to the graph
    value, grad = omega(model.W, states, torch.ones_like(states), "tanh")
    assert value.grad_fn is None and grad.grad_fn is None and not grad.requires_grad
    with pytest.raises(ValueError, match="activation: unknown value 'gelu'"):
        omega(model.W, states, torch.ones_like(states), "gelu")
