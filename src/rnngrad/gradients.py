"""Exact per-step gradient contributions and Jacobian norms: the lecture's formula, measured.

For the loss at one output step t, backpropagation through time gives

    dL_t/dW = sum_{k=1..t} C_{t,k},   C_{t,k} = sum_batch delta_{t,k} h_{k-1}^T,   delta_{t,k} = dL_t/da_k,
    delta_{t,t} = dL_t/dh_t * f'(a_t),   delta_{t,k} = (W^T delta_{t,k+1}) * f'(a_k)  for k < t,

and the same with x_k in place of h_{k-1} for the input weights U. Every term holds the product of t-k Jacobians
dh_j/dh_{j-1} = diag(f'(a_j)) W, whose spectral norms we log too. All of it is computed in float64 on a copy of the
model, so the logged numbers do not depend on the training dtype and the float floor sits at 1e-308.

Spectral norms are exact: torch.linalg.matrix_norm(ord=2) (an SVD), never a power iteration.
"""

from __future__ import annotations

import copy

import pandas as pd
import torch

from rnngrad.losses import step_loss
from rnngrad.models import LSTMBaseline, VanillaRNN
from rnngrad.theory import lyapunov_qr

SATURATION_THRESHOLD = 0.01  # f'(a) below this counts as saturated (sigmoid, tanh) or dead (relu)

GRADIENT_COLUMNS = ["t", "k", "distance", "contribution_norm", "contribution_norm_U", "dLdh_norm"]
JACOBIAN_COLUMNS = ["j", "jac_norm", "jac_norm_max", "deriv_mean", "saturated_frac"]
PRODUCT_COLUMNS = ["t", "distance", "product_norm", "log_product_norm"]
SPECTRUM_COLUMNS = ["sigma_max_W", "spectral_radius_W", "lyapunov_qr"]


def resolve_targets(targets: list, mask: torch.Tensor) -> list[int]:
    """Target steps (1-based); 'last' is the last step at which any sequence of the batch has a loss."""
    last = int(mask.any(0).nonzero().max()) + 1
    return sorted({last if t == "last" else int(t) for t in targets})


def contribution_terms(model: VanillaRNN, x, targets, mask, task: str, t: int) -> tuple:
    """C_{t,k} for W ([t, H, H]) and for U ([t, H, D]) and mean ||dL_t/dh_k|| ([t]), k = 1..t ascending,
    by the explicit backward recursion."""
    with torch.no_grad():
        _, states = model.unroll(x[:, :t])
    h_t = states[:, t - 1].clone().requires_grad_(True)
    loss_t = step_loss(task, h_t @ model.V.T + model.c, targets[:, t - 1], mask[:, t - 1])
    (grad_h,) = torch.autograd.grad(loss_t, h_t)  # dL_t/dh_t through the readout
    with torch.no_grad():
        deriv = model.act.df(states)
        prev = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1)
        grads_h, deltas = [], []
        for k in range(t, 0, -1):  # k = t, t-1, ..., 1
            grads_h.append(grad_h)
            delta = grad_h * deriv[:, k - 1]  # delta_{t,k} = dL_t/dh_k * f'(a_k)
            deltas.append(delta)
            grad_h = delta @ model.W  # dL_t/dh_{k-1} = W^T delta_{t,k}
        deltas = torch.stack(deltas[::-1], 0)  # [t, batch, H]
        dldh_norms = torch.stack(grads_h[::-1], 0).norm(dim=2).mean(1)
        contrib_w = torch.einsum("kbi,kbj->kij", deltas, prev.transpose(0, 1))
        contrib_u = torch.einsum("kbi,kbj->kij", deltas, x[:, :t].transpose(0, 1))
    return contrib_w, contrib_u, dldh_norms


def _gradient_frame(t: int, contribution_norm, contribution_norm_u, dldh_norm) -> pd.DataFrame:
    k = torch.arange(1, t + 1)
    return pd.DataFrame(
        {
            "t": t,
            "k": k.numpy(),
            "distance": (t - k).numpy(),
            "contribution_norm": contribution_norm.numpy(),
            "contribution_norm_U": contribution_norm_u.numpy(),
            "dLdh_norm": dldh_norm.numpy(),
        }
    )


def contributions(model: VanillaRNN, x, targets, mask, task: str, t: int) -> pd.DataFrame:
    """Rows (t, k, distance, ||C_{t,k}||_F for W and U, mean ||dL_t/dh_k||) for k = 1..t."""
    contrib_w, contrib_u, dldh = contribution_terms(model, x, targets, mask, task, t)
    return _gradient_frame(t, torch.linalg.matrix_norm(contrib_w), torch.linalg.matrix_norm(contrib_u), dldh)


def lstm_dldh(model: LSTMBaseline, x, targets, mask, task: str, t: int) -> pd.DataFrame:
    """||dL_t/dh_k|| for the LSTM through autograd (each h_k retains its gradient)."""
    states = model.states(x[:, :t], keep_grad=True)
    loss_t = step_loss(task, model.readout(states[-1]), targets[:, t - 1], mask[:, t - 1])
    loss_t.backward()
    dldh = torch.stack([h.grad.norm(dim=1).mean() for h in states]).detach()
    nan = torch.full((t,), float("nan"), dtype=torch.float64)
    return _gradient_frame(t, nan, nan, dldh)


def step_jacobians(model: VanillaRNN, x) -> tuple[torch.Tensor, torch.Tensor]:
    """J_j = diag(f'(a_j)) W for every sequence and step: [S, T, H, H], and f'(a) as [S, T, H]."""
    with torch.no_grad():
        _, states = model.unroll(x)
        deriv = model.act.df(states)
        return deriv[..., :, None] * model.W, deriv


def jacobian_table(jacobians: torch.Tensor, deriv: torch.Tensor) -> pd.DataFrame:
    norms = torch.linalg.matrix_norm(jacobians, ord=2)  # [S, T]
    steps = jacobians.shape[1]
    return pd.DataFrame(
        {
            "j": torch.arange(1, steps + 1).numpy(),
            "jac_norm": norms.mean(0).numpy(),
            "jac_norm_max": norms.max(0).values.numpy(),
            "deriv_mean": deriv.mean((0, 2)).numpy(),
            "saturated_frac": (deriv < SATURATION_THRESHOLD).double().mean((0, 2)).numpy(),
        }
    )


def product_table(jacobians: torch.Tensor, t: int) -> pd.DataFrame:
    """||J_t J_{t-1} ... J_{t-d+1}||_2 for d = 1..t, kept as (log scale, unit-norm matrix) so it never overflows."""
    samples, hidden = jacobians.shape[0], jacobians.shape[-1]
    product = torch.eye(hidden, dtype=jacobians.dtype).expand(samples, hidden, hidden)
    log_scale = torch.zeros(samples, dtype=jacobians.dtype)
    log_norms = []
    for d in range(1, t + 1):
        product = product @ jacobians[:, t - d]
        size = torch.linalg.matrix_norm(product).clamp_min(torch.finfo(product.dtype).tiny)
        product = product / size[:, None, None]
        log_scale = log_scale + size.log()
        log_norms.append(log_scale + torch.linalg.matrix_norm(product, ord=2).log())
    log_norms = torch.stack(log_norms, 1)  # [S, t]
    return pd.DataFrame(
        {
            "t": t,
            "distance": torch.arange(1, t + 1).numpy(),
            "product_norm": log_norms.exp().mean(0).numpy(),
            "log_product_norm": log_norms.mean(0).numpy(),
        }
    )


def spectrum_table(model: VanillaRNN, jacobians: torch.Tensor) -> pd.DataFrame:
    with torch.no_grad():
        W = model.W  # noqa: N806 - the lecture's name
        return pd.DataFrame(
            {
                "sigma_max_W": [float(torch.linalg.matrix_norm(W, ord=2))],
                "spectral_radius_W": [float(torch.linalg.eigvals(W).abs().max())],
                "lyapunov_qr": [float(lyapunov_qr(jacobians).mean())],
            }
        )


def log_step(model, batch: tuple, task: str, targets: list, jacobian_samples: int) -> dict[str, pd.DataFrame]:
    """Every gradient and Jacobian table for the model as it is now, on the fixed logging batch.

    Returns frames keyed gradients, jacobians, products, spectrum (the last three empty for the LSTM).
    """
    model64 = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    x, y, mask = (tensor.cpu() for tensor in batch)
    x = x.double()
    y = y.double() if y.is_floating_point() else y
    steps = resolve_targets(targets, mask)
    if isinstance(model64, LSTMBaseline):
        gradients = pd.concat([lstm_dldh(model64, x, y, mask, task, t) for t in steps], ignore_index=True)
        return {
            "gradients": gradients,
            "jacobians": pd.DataFrame(columns=JACOBIAN_COLUMNS, dtype=float),
            "products": pd.DataFrame(columns=PRODUCT_COLUMNS, dtype=float),
            "spectrum": pd.DataFrame(columns=SPECTRUM_COLUMNS, dtype=float),
        }
    gradients = pd.concat([contributions(model64, x, y, mask, task, t) for t in steps], ignore_index=True)
    jacobians, deriv = step_jacobians(model64, x[:jacobian_samples])
    return {
        "gradients": gradients,
        "jacobians": jacobian_table(jacobians, deriv),
        "products": product_table(jacobians, steps[0]),
        "spectrum": spectrum_table(model64, jacobians),
    }
