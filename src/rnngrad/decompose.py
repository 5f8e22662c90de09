"""The same instruments for any recurrent cell: contributions C_{t,k} and step Jacobians through autograd.

For a cell s_t = cell(s_{t-1}, x_t; theta) whose state s may be a tuple (LSTM: (h, c)), unroll the sequence with
a separate copy theta_k of every logged weight at each step k (theta_k = theta + e_k with e_k = 0, so the numbers
are the model's). Then dL_t/dtheta = sum_k dL_t/dtheta_k, and the k-th term is C_{t,k}: for the vanilla RNN it is
exactly the lecture's delta_{t,k} h_{k-1}^T of :mod:`rnngrad.gradients`. One forward pass serves every target t,
and one backward pass per t gives every C_{t,k} at once, with dL_t/ds_k from a zero nudge added to each state.

The step Jacobian J_j = ds_j/ds_{j-1} over the whole (flattened) state comes from torch.func.jacrev, vmapped over
the sampled sequences and steps. Its spectral norm, the products' norms kept as logs and the QR Lyapunov estimate
are those of :mod:`rnngrad.gradients`, computed by the same functions from these Jacobians. Everything runs in
float64 on a copy of the model. The tables are those of ``gradients.log_step`` with a ``weight`` column; columns a
cell does not define (f' statistics without one elementwise nonlinearity, sigma_max without one recurrent
matrix) are NaN.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from rnngrad import gradients
from rnngrad.losses import step_loss
from rnngrad.models import CellModel, RecurrentModel


class _Step(nn.Module):
    """The model's step as a module's forward, so that torch.func.functional_call can swap its parameters."""

    def __init__(self, model: RecurrentModel):
        super().__init__()
        self.model = model

    def forward(self, x_t, state):
        return self.model.step(x_t, state)


def _weights(model: RecurrentModel) -> dict[str, str]:
    """Every parameter that gets per-step copies: the recurrent weights (by table name) and the input weights."""
    return {**model.recurrent_weights, **{name: name for name in model.input_weights}}


def task_loss(task: str, targets, mask):
    """L_t of a task as a function of t and the readout's output at t (what the decomposition differentiates)."""
    return lambda t, output: step_loss(task, output, targets[:, t - 1], mask[:, t - 1])


def contribution_table(model: RecurrentModel, x, loss, steps: list[int]) -> pd.DataFrame:
    """Rows (weight, t, k, distance, ||C_{t,k}||_F, input weights' ||C_{t,k}||_F, mean ||dL_t/ds_k||), one per
    recurrent weight, target step t in ``steps`` and k = 1..t.

    ``contribution_norm_U`` is the Frobenius norm over all of ``model.input_weights`` together (NaN without any);
    ``dLdh_norm`` is the mean over the batch of the norm of dL_t/ds_k over the whole state (for the LSTM both h
    and c)."""
    return _frame(*contribution_terms(model, x, loss, steps), model, steps)


def contribution_terms(model: RecurrentModel, x, loss, steps: list[int]) -> tuple:
    """For each t in ``steps``: {parameter: C_{t,k} as [t, *shape]} and dL_t/ds_k per state part ([t, B, n_i]).

    ``loss(t, y_t)``: L_t from the readout's output at step t (1-based), e.g. :func:`task_loss`."""
    params = dict(model.named_parameters())
    t_max = max(steps)
    copies = {
        name: torch.zeros((t_max, *params[name].shape), dtype=x.dtype, requires_grad=True)
        for name in dict.fromkeys(_weights(model).values())
    }
    stepper = _Step(model)
    state = model.init_state(x)
    nudges = [torch.zeros((t_max, *part.shape), dtype=x.dtype, requires_grad=True) for part in state]
    losses = {}
    for k in range(t_max):
        step_params = {f"model.{name}": p + copies[name][k] if name in copies else p for name, p in params.items()}
        state = functional_call(stepper, step_params, (x[:, k], state))
        state = tuple(part + nudge[k] for part, nudge in zip(state, nudges, strict=True))
        if k + 1 in steps:
            losses[k + 1] = loss(k + 1, model.readout(model.output(state)))
    terms, state_grads, leaves = [], [], [*copies.values(), *nudges]
    for t in steps:
        grads = torch.autograd.grad(losses[t], leaves, retain_graph=t != steps[-1], allow_unused=True)
        grads = [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves, strict=True)]
        terms.append({name: g[:t] for name, g in zip(copies, grads, strict=False)})
        state_grads.append([g[:t] for g in grads[len(copies) :]])
    return terms, state_grads


def _frame(terms, state_grads, model: RecurrentModel, steps: list[int]) -> pd.DataFrame:
    frames = []
    for t, term, grads in zip(steps, terms, state_grads, strict=True):
        with torch.no_grad():
            dldh = torch.cat(grads, -1).norm(dim=-1).mean(1)
            if model.input_weights:
                squared = sum(term[name].flatten(1).square().sum(1) for name in model.input_weights)
                norm_u = squared.sqrt()
            else:
                norm_u = torch.full((t,), math.nan, dtype=torch.float64)
            for weight, name in model.recurrent_weights.items():
                norm = term[name].flatten(1).norm(dim=1)
                frames.append(gradients.gradient_frame(t, norm, norm_u, dldh, weight))
    return pd.concat(frames, ignore_index=True)


def state_sequence(model: RecurrentModel, x) -> tuple[torch.Tensor, ...]:
    """s_0..s_T per state part, each [batch, T + 1, n_i]."""
    state = model.init_state(x)
    parts = [[p] for p in state]
    with torch.no_grad():
        for x_t in x.unbind(1):
            state = model.step(x_t, state)
            for seq, p in zip(parts, state, strict=True):
                seq.append(p)
    return tuple(torch.stack(seq, 1) for seq in parts)


def step_jacobians(model: RecurrentModel, x, states: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """J_j = ds_j/ds_{j-1} over the whole state (parts concatenated) for every sequence of x and step:
    [S, T, n, n], from s_0..s_T as :func:`state_sequence` gives them."""
    sizes = [part.shape[-1] for part in states]

    def step(flat, x_t):  # one sequence's state and input, without the batch axis
        state = tuple(part[None] for part in flat.split(sizes))
        return torch.cat([part[0] for part in model.step(x_t[None], state)])

    previous = torch.cat([part[:, :-1] for part in states], -1)
    with torch.no_grad():
        return vmap(vmap(jacrev(step)))(previous, x)


def spectra_tables(model: RecurrentModel, x, states, t: int) -> dict[str, pd.DataFrame]:
    """The jacobians, products (ending at t) and spectrum tables of the sequences x from their states."""
    jac = step_jacobians(model, x, states)
    deriv = model.derivatives(model.output(tuple(part[:, 1:] for part in states)))
    norms = gradients.spectral_norms(jac)
    steps = jac.shape[1]
    nan = torch.full((steps,), math.nan, dtype=torch.float64)
    matrix = model.recurrent_matrix()
    return {
        "jacobians": pd.DataFrame(
            {
                "j": torch.arange(1, steps + 1).numpy(),
                "jac_norm": norms.mean(0).numpy(),
                "jac_norm_max": norms.max(0).values.numpy(),
                "deriv_mean": (nan if deriv is None else deriv.mean((0, 2))).numpy(),
                "saturated_frac": (
                    nan if deriv is None else (deriv < gradients.SATURATION_THRESHOLD).double().mean((0, 2))
                ).numpy(),
            }
        ),
        "products": gradients.product_table(jac, t),
        "spectrum": gradients.spectrum_table(matrix, jac),
    }


def tables(model: RecurrentModel, x, loss, steps: list[int], jacobian_samples: int, spectra: bool = True) -> dict:
    """The gradients table for the target steps, and with ``spectra`` the jacobians, products (ending at the first
    target) and spectrum tables of the first ``jacobian_samples`` sequences."""
    result = {"gradients": contribution_table(model, x[:, : max(steps)], loss, steps)}
    if spectra:
        sample = x[:jacobian_samples]
        result.update(spectra_tables(model, sample, state_sequence(model, sample), steps[0]))
    return result


def log_step(
    model: RecurrentModel, batch: tuple, task: str, targets: list, jacobian_samples: int, spectra: bool = True
) -> dict[str, pd.DataFrame]:
    """Every table of :func:`rnngrad.gradients.log_step`, by autograd for any cell, on a float64 copy."""
    model64 = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    x, y, mask = (tensor.cpu() for tensor in batch)
    y = y.double() if y.is_floating_point() else y
    steps = gradients.resolve_targets(targets, mask)
    return tables(model64, x.double(), task_loss(task, y, mask), steps, jacobian_samples, spectra)


def analyse(
    cell: nn.Module,
    x: torch.Tensor,
    loss,
    targets=("last",),
    hidden: int | None = None,
    jacobian_samples: int = 4,
) -> dict[str, pd.DataFrame]:
    """Contributions, Jacobian norms, product norms and the Lyapunov estimate of a user's own cell on one batch.

    ``cell``: an nn.Module whose ``forward(x_t, state)`` returns the next state (a [batch, n] tensor or a tuple of
    them; see :class:`rnngrad.models.CellModel` for the optional ``init_state``, ``output``,
    ``recurrent_weights``). ``x``: inputs [batch, T, D]. ``loss(t, h_t)``: the scalar loss L_t at step t (1-based)
    from the cell's output h_t [batch, n]. ``targets``: the steps t whose loss is decomposed ('last' = T).
    ``hidden``: the state size when the cell has no ``init_state`` (default: ``cell.hidden_size``).
    Runs in float64 on a copy of the cell. Returns the tables ``gradients`` (one row per recurrent weight, t and
    k), ``jacobians``, ``products`` and ``spectrum``, with the columns the training logs have.
    """
    size = hidden if hidden is not None else getattr(cell, "hidden_size", None)
    if size is None and not hasattr(cell, "init_state"):
        raise ValueError("analyse: give hidden=, or a cell with a hidden_size attribute or an init_state(x) method")
    model = CellModel(copy.deepcopy(cell), size).to(dtype=torch.float64)
    steps = sorted({x.shape[1] if t == "last" else int(t) for t in targets})
    return tables(model, x.double(), loss, steps, jacobian_samples)
