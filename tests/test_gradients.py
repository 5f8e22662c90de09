"""The per-step decomposition of dL_t/dW is exact: checked against autograd in float64, term by term."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import looped_states, make_batch, make_model

from rnngrad import gradients
from rnngrad.losses import step_loss
from rnngrad.models import recurrent_init


def autograd_step_loss_grads(model, x, y, mask, task, t):
    """dL_t/dW and dL_t/dU by autograd through the plain unrolled loop."""
    states = looped_states(model, x[:, :t])
    loss = step_loss(task, states[:, t - 1] @ model.V.T + model.c, y[:, t - 1], mask[:, t - 1])
    return torch.autograd.grad(loss, [model.W, model.U])


def per_step_copy_grads(model, x, y, mask, task, t):
    """Unroll with a separate copy W_k, U_k at every step: autograd's dL_t/dW_k is the term C_{t,k}."""
    w_copies = [model.W.detach().clone().requires_grad_(True) for _ in range(t)]
    u_copies = [model.U.detach().clone().requires_grad_(True) for _ in range(t)]
    h = x.new_zeros(x.shape[0], model.hidden)
    for k in range(t):
        h = model.act.f(h @ w_copies[k].T + x[:, k] @ u_copies[k].T + model.b)
    loss = step_loss(task, h @ model.V.T + model.c, y[:, t - 1], mask[:, t - 1])
    grads = torch.autograd.grad(loss, w_copies + u_copies)
    return torch.stack(grads[:t]), torch.stack(grads[t:])


def sampled_derivs(model, x):
    """f'(a) of every sequence and step, [S, T, H], as log_step takes them."""
    with torch.no_grad():
        return model.act.df(model.states(x))


def relative_error(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


CASES = [
    (task, activation, hidden, steps, seed)
    for task in ("copy", "adding")
    for activation in ("tanh", "sigmoid", "relu")
    for hidden, steps in ((1, 1), (1, 12), (7, 1), (7, 15), (16, 25))
    for seed in (0, 3)
]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize(("hidden", "steps"), [(1, 1), (1, 9), (7, 13)])
def test_training_recurrence_and_its_explicit_backward_equal_autograd_through_the_loop(activation, hidden, steps):
    """The model's forward (in-place, step-major) and BPTT backward against the plain loop autograd follows."""
    model = make_model("copy", hidden, activation, scale=1.3, seed=5)
    x, _, _ = make_batch("copy", batch=4, steps=steps, seed=6)
    upstream = torch.randn(4, steps, hidden, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    params = [model.W, model.U, model.b]
    states = model.states(x)
    explicit = torch.autograd.grad((states * upstream).sum(), params)
    looped = looped_states(model, x)
    expected = torch.autograd.grad((looped * upstream).sum(), params)
    assert torch.allclose(states, looped, rtol=1e-14, atol=1e-15)
    for name, ours, theirs in zip("WUb", explicit, expected, strict=True):
        assert relative_error(ours, theirs) < 1e-12, name


@pytest.mark.parametrize(("task", "activation", "hidden", "steps", "seed"), CASES)
def test_sum_of_contributions_equals_autograd(task, activation, hidden, steps, seed):
    model = make_model(task, hidden, activation, scale=1.2, seed=seed)
    x, y, mask = make_batch(task, batch=5, steps=steps, seed=seed + 10)
    contrib_w, contrib_u, _ = gradients.contribution_terms(model, x, y, mask, task, steps)
    grad_w, grad_u = autograd_step_loss_grads(model, x, y, mask, task, steps)
    assert relative_error(contrib_w.sum(0), grad_w) < 1e-10
    assert relative_error(contrib_u.sum(0), grad_u) < 1e-10


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("hidden", [1, 5])
def test_every_term_equals_gradient_of_its_own_copy_of_w(activation, hidden):
    model = make_model("adding", hidden, activation, scale=1.1, seed=4)
    x, y, mask = make_batch("adding", batch=3, steps=9, seed=5)
    t = 7
    contrib_w, contrib_u, _ = gradients.contribution_terms(model, x, y, mask, "adding", t)
    copies_w, copies_u = per_step_copy_grads(model, x, y, mask, "adding", t)
    for k in range(t):
        assert torch.allclose(contrib_w[k], copies_w[k], rtol=1e-10, atol=1e-14)
        assert torch.allclose(contrib_u[k], copies_u[k], rtol=1e-10, atol=1e-14)
    assert torch.count_nonzero(contrib_w[0]) == 0  # h_0 = 0: the first step adds nothing to dL/dW


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 4.0])
def test_logged_norms_are_the_frobenius_norms_of_the_terms(activation, scale):
    """contributions() gets the norms from B x B Gram matrices; they equal the norms of the H x H terms."""
    model = make_model("copy", 11, activation, scale=scale, seed=2)
    x, y, mask = make_batch("copy", batch=6, steps=20, seed=3)
    contrib_w, contrib_u, dldh = gradients.contribution_terms(model, x, y, mask, "copy", 17)
    frame = gradients.contributions(model, x, y, mask, "copy", 17)
    assert list(frame.k) == list(range(1, 18)) and list(frame.distance) == list(range(16, -1, -1))
    for column, terms in (("contribution_norm", contrib_w), ("contribution_norm_U", contrib_u)):
        expected = torch.linalg.matrix_norm(terms).numpy()
        assert frame[column].to_numpy() == pytest.approx(expected, rel=1e-10, abs=1e-300), column
    assert frame.dLdh_norm.to_numpy() == pytest.approx(dldh.numpy(), rel=1e-14)


def test_dldh_is_the_gradient_with_respect_to_each_state():
    model = make_model("copy", 6, "tanh", scale=0.9, seed=1)
    x, y, mask = make_batch("copy", batch=4, steps=10, seed=2)
    t = 10
    _, _, dldh = gradients.contribution_terms(model, x, y, mask, "copy", t)
    h = x.new_zeros(4, 6)
    states = []
    for k in range(t):
        h = model.act.f(h @ model.W.T + x[:, k] @ model.U.T + model.b)
        h.retain_grad()
        states.append(h)
    step_loss("copy", h @ model.V.T + model.c, y[:, t - 1], mask[:, t - 1]).backward()
    expected = torch.stack([s.grad.norm(dim=1).mean() for s in states])
    assert torch.allclose(dldh, expected, rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_step_jacobians_equal_autograd_jacobian_of_one_step(activation):
    model = make_model("adding", 5, activation, scale=1.3, seed=2)
    x, _, _ = make_batch("adding", batch=2, steps=6, seed=3)
    jacobians = gradients.step_jacobians(model.W, sampled_derivs(model, x))
    states = looped_states(model, x)
    for sequence in range(2):
        for j in range(1, 6):

            def one_step(h_prev, sequence=sequence, j=j):
                return model.act.f(model.W @ h_prev + model.U @ x[sequence, j] + model.b)

            expected = torch.autograd.functional.jacobian(one_step, states[sequence, j - 1].detach())
            assert torch.allclose(jacobians[sequence, j], expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0, 40.0])
def test_jacobian_norms_match_dense_svd(activation, scale):
    model = make_model("copy", 9, activation, scale=scale, seed=3)
    x, _, _ = make_batch("copy", batch=3, steps=12, seed=4)
    deriv = sampled_derivs(model, x)
    dense = torch.linalg.svdvals(gradients.step_jacobians(model.W, deriv)).detach()[..., 0]
    assert torch.allclose(gradients.jacobian_norms(model.W, deriv), dense, rtol=1e-12, atol=1e-300)
    table = gradients.jacobian_table(model.W, deriv)
    assert list(table.j) == list(range(1, 13))
    assert table.jac_norm.to_numpy() == pytest.approx(dense.mean(0).numpy(), rel=1e-12)
    assert table.jac_norm_max.to_numpy() == pytest.approx(dense.max(0).values.numpy(), rel=1e-12)


@pytest.mark.parametrize("chunk_steps", [None, 1, 7])  # the eigensolver's chunks: all 30 steps, 1, 7 (4 x 7 + 2)
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_product_norms_match_dense_svd_of_the_product(scale, chunk_steps, monkeypatch):
    if chunk_steps is not None:  # 3 sequences of 6 x 6 products a step
        monkeypatch.setattr(gradients, "EIGEN_CHUNK_FLOATS", chunk_steps * 3 * 36)
    model = make_model("adding", 6, "relu", scale=scale, seed=7)
    x, _, _ = make_batch("adding", batch=3, steps=30, seed=8)
    deriv = sampled_derivs(model, x)
    jacobians = gradients.step_jacobians(model.W, deriv).detach()
    t = 30
    table = gradients.product_table(jacobians, t)
    for d in (1, 2, 10, 30):
        product = torch.eye(6, dtype=torch.float64).expand(3, 6, 6)
        for j in range(t - 1, t - d - 1, -1):
            product = product @ jacobians[:, j]
        dense = torch.linalg.svdvals(product)[:, 0]
        row = table[table.distance == d].iloc[0]
        assert row.product_norm == pytest.approx(float(dense.mean()), rel=1e-9)
        assert row.log_product_norm == pytest.approx(float(dense.log().mean()), rel=1e-9, abs=1e-9)


def test_product_norm_survives_underflow():
    model = make_model("adding", 4, "sigmoid", scale=0.05, seed=0)
    x, _, _ = make_batch("adding", batch=2, steps=200, seed=0)
    table = gradients.product_table(gradients.step_jacobians(model.W, sampled_derivs(model, x)), 200)
    assert table.log_product_norm.iloc[-1] < -700  # below float64's smallest normal number, still finite
    assert math.isfinite(table.log_product_norm.iloc[-1])


@pytest.mark.parametrize("g", [0.8, 1.0, 1.25])
def test_orthogonal_linear_regime_contributions_decay_as_g_to_the_distance(g):
    """tanh near 0 is the identity, so J_j ~ W = g Q and every singular value of the product is g^(t-k):
    ||dL_t/dh_k|| and ||C_{t,k}|| (for U, with the same input at every step) follow g^(t-k) within 1%."""
    model = make_model("adding", 16, "tanh", scale=g, seed=1)
    x, y, mask = make_batch("adding", batch=1, steps=21, seed=2, input_scale=1e-6)
    x = x[:, :1].expand(1, 21, 2).contiguous()
    frame = gradients.contributions(model, x, y, mask, "adding", 21)
    expected = g**frame.distance
    for column in ("dLdh_norm", "contribution_norm_U"):
        ratio = frame[column] / frame[column][frame.distance == 0].iloc[0]
        assert ((ratio / expected - 1).abs() < 0.01).all(), column


def test_one_unit_ratio_between_neighbouring_steps_is_w_times_derivative():
    """The lecture's scalar case, H = 1, one sequence, the same input at every step: going one step further back
    multiplies dL_t/dh by w f'(a_k) and the U contribution by w f'(a_{k-1}), exactly."""
    model = make_model("adding", 1, "tanh", scale=0.9, seed=0)
    x, y, mask = make_batch("adding", batch=1, steps=12, seed=1)
    x = x[:, :1].expand(1, 12, 2).contiguous()
    states = looped_states(model, x)
    _, contrib_u, dldh = gradients.contribution_terms(model, x, y, mask, "adding", 12)
    w = float(model.W.detach())
    deriv = model.act.df(states).detach()[0, :, 0]
    norms_u = torch.linalg.matrix_norm(contrib_u)
    for k in range(2, 13):  # 1-based k; tensors are 0-based
        assert float(dldh[k - 2] / dldh[k - 1]) == pytest.approx(abs(w * float(deriv[k - 1])), rel=1e-12)
        assert float(norms_u[k - 2] / norms_u[k - 1]) == pytest.approx(abs(w * float(deriv[k - 2])), rel=1e-12)


def test_resolve_targets_last_is_the_last_masked_step():
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 6] = mask[1, 8] = True
    assert gradients.resolve_targets(["last", 3], mask) == [3, 9]


# ---------------------------------------------------------------------------------------------------------------
# The finite-time Lyapunov exponent by the QR method


@pytest.mark.parametrize("g", [0.3, 1.0, 1.5, 4.0])
def test_lyapunov_qr_of_a_scaled_orthogonal_matrix_is_ln_g(g):
    q = [recurrent_init("orthogonal", 1.0, 7, torch.Generator().manual_seed(seed)) for seed in range(25)]
    assert gradients.lyapunov_qr(g * torch.stack(q)) == pytest.approx(math.log(g), abs=1e-13)


def test_lyapunov_qr_of_diagonal_matrices_is_max_log_abs_entry():
    d = torch.tensor([0.5, -2.0, 1.1, 0.0], dtype=torch.float64)
    assert gradients.lyapunov_qr(torch.diag(d).expand(30, 4, 4)) == pytest.approx(math.log(2.0), abs=1e-14)
    # varying diagonals: the exponent is the largest time-average of log|d_i(t)|
    gen = torch.Generator().manual_seed(0)
    diag = torch.rand(50, 3, generator=gen, dtype=torch.float64) * 3
    expected = float(torch.log(diag).mean(0).max())
    assert gradients.lyapunov_qr(torch.diag_embed(diag)) == pytest.approx(expected, abs=1e-13)


def test_lyapunov_qr_batch_and_the_spectral_radius_of_a_non_normal_matrix():
    """For constant J the exponent is ln(spectral radius), not ln(sigma_max): J = [[a, c], [0, a]] has
    sigma_max >> a, and ||J^T|| = a^T (1 + T c / a)-ish, so the QR estimate approaches ln a like log(T)/T."""
    a, c, steps = 0.9, 5.0, 2000
    J = torch.tensor([[a, c], [0.0, a]], dtype=torch.float64)
    batch = torch.stack([J.expand(steps, 2, 2), 2.0 * J.expand(steps, 2, 2)])
    out = gradients.lyapunov_qr(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    assert float(out[0]) == pytest.approx(math.log(a), abs=6e-3)  # ln(1 + T c / a) / T = 4.6e-3
    assert float(out[1] - out[0]) == pytest.approx(math.log(2.0), abs=1e-12)
    assert math.log(float(torch.linalg.matrix_norm(J, ord=2))) > math.log(a) + 1.5


def test_lyapunov_qr_matches_the_growth_of_the_product_norm():
    """(1/T) ln ||J_T ... J_1|| -> lambda_1: random tanh-like Jacobians, checked on the renormalised product."""
    gen = torch.Generator().manual_seed(5)
    steps, hidden = 1500, 6
    W = torch.randn(hidden, hidden, generator=gen, dtype=torch.float64) * (1.8 / math.sqrt(hidden))
    derivs = 1 - torch.tanh(torch.randn(steps, hidden, generator=gen, dtype=torch.float64)) ** 2
    J = derivs[:, :, None] * W
    log_norm, product = 0.0, torch.eye(hidden, dtype=torch.float64)
    for t in range(steps):
        product = J[t] @ product
        scale = float(torch.linalg.matrix_norm(product))  # any norm keeps it finite; the last one is spectral
        log_norm += math.log(scale)
        product = product / scale
    log_norm += math.log(float(torch.linalg.matrix_norm(product, ord=2)))
    assert gradients.lyapunov_qr(J) == pytest.approx(log_norm / steps, abs=5e-3)
