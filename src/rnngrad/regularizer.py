"""Pascanu, Mikolov and Bengio 2013's regulariser Omega (ICML 2013, section 3.3), for the vanilla RNN, as they
trained it: eq. 10, with squared norms.

Their x_k is our pre-activation a_k (x_t = W_rec sigma(x_{t-1}) + W_in u_t + b), so dx_{k+1}/dx_k = W diag(f'(a_k))
and dE/dx_{k+1} is delta_{k+1} = dE/da_{k+1}. Write n_{k,b} = (W^T delta_{k+1,b}) * f'(a_{k,b}), the error carried
back one step along its own direction. Eq. 9 defines the regulariser with plain norms, sum over k of
(||n_k|| / ||delta_{k+1}|| - 1)^2. Eq. 10, the gradient they trained with, differentiates the same ratio with both
norms squared, with respect to W only, a_k and delta_{k+1} held constant; their code does the same. We follow
eq. 10 and the code (one method, the one the paper's results come from), with the batch and step aggregation of
the code:

    r_{k,b}   = ||n_{k,b}||^2 / ||delta_{k+1,b}||^2                          (k = 1..T-1, b = 1..B)
    Omega     = sum over kept (k, b) of (r_{k,b} - 1)^2 / N_kept,
    dOmega/dW = sum over kept (k, b) of 4 (r_{k,b} - 1) / (||delta_{k+1,b}||^2 N_kept) delta_{k+1,b} m_{k,b}^T,
    m_{k,b}   = n_{k,b} * f'(a_{k,b}),

kept meaning ||delta_{k+1,b}||^2 >= 1e-20 and N_kept their number. The logged Omega is this value, the quantity
whose gradient (a_k, delta_{k+1} constant) is added.

Both forms vanish where every step keeps the error's norm. With rho = ||n|| / ||delta_{k+1}||, eq. 9's term is
(rho - 1)^2 and eq. 10's (rho^2 - 1)^2 = (rho - 1)^2 (rho + 1)^2; their slopes in rho, 2 (rho - 1) and
4 rho (rho^2 - 1), differ by the factor 2 rho (rho + 1): the squared form pulls harder where rho > 0.366 (the
error grows, or shrinks less than 2.7-fold a step) and less where the error shrinks faster, hardly at all as it
vanishes (rho -> 0: slope -> 0, against -2 for eq. 9). Where n = 0 (for relu: every
unit off at step k, so n = 0 for every W) the term is 1 and its gradient is 0: d||n||^2/dW = 2 delta (n * f')^T
vanishes with n, so no case needs handling (eq. 9's gradient divides by ||n|| there).

The authors' code (github.com/pascanur/trainingRNNs, RNN.py, commit 3f5df3f):
- lines 189-210 build the term: ``tmp_x`` = ||(dC/dh_k * f'(a_k)) W_hh^T||^2 and ``tmp_y`` = ||dC/dh_k||^2
  (squared norms, lines 203-206), ``(tmp_x / tmp_y - 1)^2`` over steps and batch (line 207);
  ``TT.grad(tmp_reg, W_hh)`` (line 210) is taken on the placeholders ``d_ht`` and ``ht``, which ``theano.clone``
  then replaces by dC/dh and h (lines 211-215), so both are constants;
- line 207 drops steps with ||dC/dh_k||^2 < ``state['bound']`` = 1e-20 (lines 67, 490); lines 208-209,
  ``tmp_reg.mean(1).sum() / n_elems.sum()``, average over the batch, sum over time and divide by the sum over time
  of the batch's kept share: the mean over the kept (step, sequence) pairs, as here;
- lines 216-217 add ``alpha * dOmega/dW_hh`` to the loss gradient of W_hh, and lines 219-230 clip the total
  norm afterwards: the regulariser's gradient is added before clipping (alpha = 2 in the code's example
  configuration, line 467; 4 in the paper's temporal-order runs).
Where the code differs from the paper's equations, we follow the paper: the code measures the gradient with respect
to the states h_k, r = ||W^T (f'(a_k) * dC/dh_k)||^2 / ||dC/dh_k||^2 (dC/dh_k carried back to h_{k-1}, k = 1..T,
the last reaching h_0, dropped on ||dC/dh_k||^2), the paper and this module with respect to the pre-activations
(delta_{k+1} = dE/da_{k+1} carried back to a_k, k = 1..T-1, dropped on ||delta_{k+1}||^2); with no kept step the
code divides 0 by 0, where this returns 0.
"""

from __future__ import annotations

import torch

from rnngrad.models import activation as get_activation

BOUND = 1e-20  # steps with ||dE/dx_{k+1}||^2 below this are dropped (their code's state['bound'])


@torch.no_grad()
def backprop(
    W: torch.Tensor,  # noqa: N803 - the lecture's names
    states: torch.Tensor,
    grad_states: torch.Tensor,
    activation: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(deltas, carries, slopes), step-major [T, B, H]: delta_t = dE/da_t = (dE/dh_t + W^T delta_{t+1}) f'(a_t),
    carry_t = W^T delta_{t+1} (0 at t = T) and slope_t = f'(a_t), from the states h_t [B, T, H] and the readout's
    dE/dh_t [B, T, H]: the recursion of models.Recurrence.backward, keeping what Omega needs."""
    act = get_activation(activation)
    slopes = act.df(states.detach().transpose(0, 1).contiguous())
    deltas = slopes.mul(grad_states.detach().transpose(0, 1)).contiguous()  # dE/dh_t f'(a_t); carries added below
    carries = torch.zeros_like(slopes)
    delta_steps, carry_steps, slope_steps = deltas.unbind(0), carries.unbind(0), slopes.unbind(0)
    for t in range(len(delta_steps) - 1, 0, -1):  # delta_t is complete here
        torch.mm(delta_steps[t], W, out=carry_steps[t - 1])  # rows: delta_t^T W = (W^T delta_t)^T
        delta_steps[t - 1].addcmul_(carry_steps[t - 1], slope_steps[t - 1])
    return deltas, carries, slopes


@torch.no_grad()
def omega(
    W: torch.Tensor,  # noqa: N803
    states: torch.Tensor,
    grad_states: torch.Tensor,
    activation: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Omega, dOmega/dW [H, H]) of the module docstring, for W [H, H], the states h_1..h_T [B, T, H] (what
    VanillaRNN.states returns) and the loss gradient dE/dh_t from the readout alone (autograd's gradient with
    respect to that states tensor). No autograd graph is built; the result has W's dtype."""
    deltas, carries, slopes = backprop(W, states, grad_states, activation)
    upstream = deltas[1:]  # dE/dx_{k+1}, k = 1..T-1
    back = carries[:-1] * slopes[:-1]  # n = dE/dx_{k+1} dx_{k+1}/dx_k = (W^T delta_{k+1}) * f'(a_k)
    up_sq = upstream.square().sum(-1)
    kept = up_sq >= BOUND
    n_kept = int(kept.sum())
    if n_kept == 0:
        return W.new_zeros(()), torch.zeros_like(W)
    up_sq = torch.where(kept, up_sq, 1.0)
    excess = torch.where(kept, back.square().sum(-1) / up_sq - 1.0, 0.0)  # r - 1, 0 where dropped
    value = excess.square().sum() / n_kept
    coef = 4.0 * excess / (up_sq * n_kept)  # d(r - 1)^2 = 2 (r - 1) dr, dr/dW = 2 delta (n * f')^T / ||delta||^2
    hidden = W.shape[0]
    grad = (upstream * coef[..., None]).reshape(-1, hidden).T @ (back * slopes[:-1]).reshape(-1, hidden)
    return value, grad
