"""Exact per-step gradient contributions and Jacobian norms: the lecture's formula, measured.

For the loss at one output step t, backpropagation through time gives

    dL_t/dW = sum_{k=1..t} C_{t,k},   C_{t,k} = sum_batch delta_{t,k} h_{k-1}^T,   delta_{t,k} = dL_t/da_k,
    delta_{t,t} = dL_t/dh_t * f'(a_t),   delta_{t,k} = (W^T delta_{t,k+1}) * f'(a_k)  for k < t,

and the same with x_k in place of h_{k-1} for the input weights U. Every term holds the product of t-k Jacobians
dh_j/dh_{j-1} = diag(f'(a_j)) W, whose spectral norms we log too. All of it is computed in float64 on a copy of the
model, so the logged numbers do not depend on the training dtype and the float floor sits at 1e-308.

Spectral norms are exact, never a power iteration: ||A||_2 is the square root of the largest eigenvalue of A A^T
from LAPACK's symmetric eigensolver (torch.linalg.eigvalsh), checked against an SVD in the tests.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import torch

from rnngrad.losses import step_loss
from rnngrad.models import VanillaRNN

SATURATION_THRESHOLD = 0.01  # f'(a) below this counts as saturated (sigmoid, tanh) or dead (relu)


def resolve_targets(targets: list, mask: torch.Tensor) -> list[int]:
    """Target steps (1-based); 'last' is the last step at which any sequence of the batch has a loss."""
    last = int(mask.any(0).nonzero().max()) + 1
    return sorted({last if t == "last" else int(t) for t in targets})


def backward_deltas(model: VanillaRNN, states, targets, mask, task: str, t: int) -> tuple:
    """delta_{t,k} = dL_t/da_k as [t, batch, H] and mean ||dL_t/dh_k|| as [t], k = 1..t ascending, by the
    explicit backward recursion from dL_t/dh_t (through the readout) down to k = 1.

    ``states``: h_1..h_T of the batch as [batch, >= t, H] (one unroll serves every target step)."""
    h_t = states[:, t - 1].clone().requires_grad_(True)
    loss_t = step_loss(task, h_t @ model.V.T + model.c, targets[:, t - 1], mask[:, t - 1])
    (grad_h,) = torch.autograd.grad(loss_t, h_t)  # dL_t/dh_t through the readout
    with torch.no_grad():
        deltas = model.act.df(states[:, :t].transpose(0, 1))  # f'(a_k), step-major; made delta_{t,k} in place
        grads_h = torch.empty_like(deltas)  # dL_t/dh_k, written in place: no copies in the loop
        grads_h[t - 1] = grad_h
        grad_at, delta_at = grads_h.unbind(0), deltas.unbind(0)  # views, one per step
        for k in range(t - 1, 0, -1):  # 0-based k = t-1, ..., 1; delta_{t,k} = dL_t/dh_k * f'(a_k)
            torch.mm(delta_at[k].mul_(grad_at[k]), model.W, out=grad_at[k - 1])  # dL_t/dh_{k-1} = W^T delta_{t,k}
        delta_at[0].mul_(grad_at[0])
    return deltas, grads_h.norm(dim=2).mean(1)


def _previous_states(states, t: int):
    """h_0..h_{t-1} as [t, batch, H], step-major like the deltas (h_0 = 0)."""
    steps_major = states[:, : t - 1].transpose(0, 1)
    return torch.cat([torch.zeros_like(states[:, 0])[None], steps_major], 0)


def contribution_terms(model: VanillaRNN, x, targets, mask, task: str, t: int) -> tuple:
    """C_{t,k} for W ([t, H, H]) and for U ([t, H, D]) and mean ||dL_t/dh_k|| ([t]), k = 1..t ascending.

    The matrices themselves: the definition the tests hold against autograd; logging needs only their norms
    (:func:`contribution_norms`)."""
    with torch.no_grad():
        states = model.states(x[:, :t])
    deltas, dldh = backward_deltas(model, states, targets, mask, task, t)
    contrib_w = torch.einsum("kbi,kbj->kij", deltas, _previous_states(states, t))
    contrib_u = torch.einsum("kbi,kbj->kij", deltas, x[:, :t].transpose(0, 1))
    return contrib_w, contrib_u, dldh


def _gram(vectors):
    """[t, B, n] -> [t, B, B]: the inner products of the batch's vectors at each step."""
    return vectors @ vectors.transpose(1, 2)


def contribution_norms(deltas, states, x) -> tuple:
    """||C_{t,k}||_F for W and for U, from deltas [t, B, H], states h_1.. [B, >= t, H] and inputs [B, >= t, D].

    ||sum_b delta_b v_b^T||_F^2 = sum_{b,b'} (delta_b . delta_b') (v_b . v_b'): B x B Gram matrices per step
    instead of the H x H term, four times fewer operations for a logging batch of 16 at H = 128."""
    t = deltas.shape[0]
    delta_gram = _gram(deltas)
    state_gram = _gram(states[:, : t - 1].transpose(0, 1))  # h_1..h_{t-1}; h_0 = 0 makes the first term zero
    squared_w = torch.cat([torch.zeros(1, dtype=deltas.dtype), (delta_gram[1:] * state_gram).sum((1, 2))])
    squared_u = (delta_gram * _gram(x[:, :t].transpose(0, 1))).sum((1, 2))
    return squared_w.clamp_min(0.0).sqrt(), squared_u.clamp_min(0.0).sqrt()


def gradient_frame(t: int, contribution_norm, contribution_norm_u, dldh_norm, weight: str = "W") -> pd.DataFrame:
    """The gradients table's rows for one target step t and one recurrent weight, k = 1..t."""
    k = torch.arange(1, t + 1)
    return pd.DataFrame(
        {
            "weight": weight,
            "t": t,
            "k": k.numpy(),
            "distance": (t - k).numpy(),
            "contribution_norm": contribution_norm.numpy(),
            "contribution_norm_U": contribution_norm_u.numpy(),
            "dLdh_norm": dldh_norm.numpy(),
        }
    )


def contributions(model: VanillaRNN, x, targets, mask, task: str, t: int, states=None) -> pd.DataFrame:
    """Rows (t, k, distance, ||C_{t,k}||_F for W and U, mean ||dL_t/dh_k||) for k = 1..t.

    ``states``: the batch's h_1..h_T when the caller has already unrolled it (log_step does, once)."""
    if states is None:
        with torch.no_grad():
            states = model.states(x[:, :t])
    deltas, dldh = backward_deltas(model, states, targets, mask, task, t)
    with torch.no_grad():
        return gradient_frame(t, *contribution_norms(deltas, states, x), dldh)


def step_jacobians(W, deriv):
    """J_j = diag(f'(a_j)) W for every sequence and step: [S, T, H, H] from f'(a) as [S, T, H]."""
    return deriv[..., :, None] * W


def jacobian_norms(W, deriv):
    """||diag(d) W||_2 for every d in deriv [..., H], exactly: the square root of the largest eigenvalue of
    diag(d) W W^T diag(d) (LAPACK's symmetric eigensolver, twice as fast as an SVD at H = 128; the Gram matrix
    is an elementwise product with W W^T, no matrix product per step)."""
    gram = W @ W.T
    return torch.stack([_largest_eigenvalue(d[..., :, None] * gram * d[..., None, :]) for d in deriv]).sqrt()


def spectral_norms(jacobians):
    """||J||_2 for every matrix of jacobians [..., n, n]: the square root of the largest eigenvalue of J J^T."""
    return _largest_eigenvalue(jacobians @ jacobians.mT).sqrt()


def _largest_eigenvalue(symmetric):
    return torch.linalg.eigvalsh(symmetric)[..., -1].clamp_min(0.0)


@torch.no_grad()
def jacobian_table(W, deriv) -> pd.DataFrame:
    """Per step j: spectral norm of J_j (mean and max over the sampled sequences), mean f', saturated share."""
    norms = jacobian_norms(W, deriv)  # [S, T]
    steps = deriv.shape[1]
    return pd.DataFrame(
        {
            "j": torch.arange(1, steps + 1).numpy(),
            "jac_norm": norms.mean(0).numpy(),
            "jac_norm_max": norms.max(0).values.numpy(),
            "deriv_mean": deriv.mean((0, 2)).numpy(),
            "saturated_frac": (deriv < SATURATION_THRESHOLD).double().mean((0, 2)).numpy(),
        }
    )


EIGEN_CHUNK_FLOATS = 2**18  # 2 MiB of float64 products per eigensolver call: few calls, bounded memory


@torch.no_grad()
def product_table(jacobians, t: int) -> pd.DataFrame:
    """||J_t J_{t-1} ... J_{t-d+1}||_2 for d = 1..t from step Jacobians [S, T, n, n] (the vanilla RNN's
    J_j = diag(f'(a_j)) W, or any cell's), mean over the sampled sequences.

    The product is kept as (log scale, unit Frobenius norm matrix), so it never overflows or underflows; its
    spectral norm is exact (largest eigenvalue of P P^T). The eigensolver runs on chunks of up to
    :data:`EIGEN_CHUNK_FLOATS` floats of products at a time, not once per distance: at small H the per-call
    cost dominated (one sequence, H = 8, T = 500: 83 ms a table with a call per distance, 49 ms chunked)."""
    samples, hidden = jacobians.shape[0], jacobians.shape[-1]
    dtype = jacobians.dtype
    chunk = max(1, EIGEN_CHUNK_FLOATS // (samples * hidden * hidden))
    product = torch.eye(hidden, dtype=dtype).expand(samples, hidden, hidden)
    log_scale = torch.zeros(samples, dtype=dtype)
    log_norms = torch.empty(samples, t, dtype=dtype)
    pending = []  # the normalised products P_d / ||P_d||_F whose spectral norms are not taken yet
    for d in range(1, t + 1):
        product = product @ jacobians[:, t - d]  # P_d = P_{d-1} J_{t-d+1}
        size = torch.linalg.matrix_norm(product).clamp_min(torch.finfo(product.dtype).tiny)
        product = product / size[:, None, None]
        log_scale = log_scale + size.log()
        log_norms[:, d - 1] = log_scale
        pending.append(product)
        if len(pending) == chunk or d == t:
            products = torch.stack(pending, 1)  # [S, n, H, H] for d - n + 1 .. d
            log_norms[:, d - len(pending) : d] += 0.5 * _largest_eigenvalue(products @ products.mT).log()
            pending = []
    return pd.DataFrame(
        {
            "t": t,
            "distance": torch.arange(1, t + 1).numpy(),
            "product_norm": log_norms.exp().mean(0).numpy(),
            "log_product_norm": log_norms.mean(0).numpy(),
        }
    )


def lyapunov_qr(jacobians) -> float | torch.Tensor:
    """Largest Lyapunov exponent of the product J_T ... J_1 by the QR method.

    A finite-time estimate, on the same sampled sequences and T logged steps (the start-up from h_0 = 0
    included) as the product norms: a consistency check of their slope, not an independent prediction (that is
    rnngrad.theory.mean_field_lyapunov). Push an orthonormal set (the identity) through J_1, J_2, ...; after each
    step re-orthonormalise with a QR factorisation, Q_t R_t = J_t Q_{t-1}, and add up ln|diag(R_t)|. The averages
    (1/T) sum_t ln|R_t[i, i]| are the Lyapunov exponents (Benettin et al. 1980); the largest is returned. As
    T grows it becomes the asymptotic slope of ln ||dh_t/dh_k|| against t - k (the backward pass's transposed
    product has the same singular values).

    ``jacobians``: [T, H, H] -> float, or a batch [S, T, H, H] -> Tensor[S]. Computed in float64.
    """
    J = torch.as_tensor(jacobians, dtype=torch.float64)
    single = J.dim() == 3
    if single:
        J = J.unsqueeze(0)
    if J.dim() != 4 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"lyapunov_qr: expected [T, H, H] or [S, T, H, H], got {tuple(J.shape)}")
    samples, steps, hidden, _ = J.shape
    Q = torch.eye(hidden, dtype=torch.float64).expand(samples, hidden, hidden)
    diagonals = torch.empty(samples, steps, hidden, dtype=torch.float64)  # diag(R_t), logged after the loop
    for t in range(steps):
        Q, R = torch.linalg.qr(J[:, t] @ Q)
        diagonals[:, t] = torch.diagonal(R, dim1=-2, dim2=-1)
    largest = (diagonals.abs().log().sum(1) / steps).max(dim=-1).values
    return float(largest[0]) if single else largest


@torch.no_grad()
def spectrum_table(W, jacobians) -> pd.DataFrame:
    """sigma_max(W), the spectral radius of W (NaN without a recurrent matrix, W None) and the finite-time largest
    Lyapunov exponent of the sampled sequences' step Jacobians [S, T, n, n]."""
    return pd.DataFrame(
        {
            "sigma_max_W": [math.nan if W is None else float(torch.linalg.matrix_norm(W, ord=2))],
            "spectral_radius_W": [math.nan if W is None else float(torch.linalg.eigvals(W).abs().max())],
            "lyapunov_qr": [float(lyapunov_qr(jacobians).mean())],
        }
    )


def log_step(
    model, batch: tuple, task: str, targets: list, jacobian_samples: int, spectra: bool = True
) -> dict[str, pd.DataFrame]:
    """Every gradient and Jacobian table for the model as it is now, on the fixed logging batch.

    One float64 unroll of the batch serves every target step and the Jacobians of its first
    ``jacobian_samples`` sequences. Returns frames keyed gradients, and with ``spectra`` also jacobians, products,
    spectrum. For the vanilla RNN; any other cell goes through :func:`rnngrad.decompose.log_step`.
    """
    model64 = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    x, y, mask = (tensor.cpu() for tensor in batch)
    x = x.double()
    y = y.double() if y.is_floating_point() else y
    steps = resolve_targets(targets, mask)
    with torch.no_grad():
        states = model64.states(x)
    tables = {
        "gradients": pd.concat([contributions(model64, x, y, mask, task, t, states) for t in steps], ignore_index=True)
    }
    if not spectra:
        return tables
    deriv = model64.act.df(states[:jacobian_samples])
    jacobians = step_jacobians(model64.W, deriv)
    return {
        **tables,
        "jacobians": jacobian_table(model64.W, deriv),
        "products": product_table(jacobians, steps[0]),
        "spectrum": spectrum_table(model64.W, jacobians),
    }
