"""Pascanu, Mikolov and Bengio 2013's regulariser Omega (ICML 2013, section 3.3, eq. 9 and 10), for the vanilla RNN.

Their x_k is our pre-activation a_k (x_t = W_rec sigma(x_{t-1}) + W_in u_t + b), so dx_{k+1}/dx_k = W diag(f'(a_k))
and dE/dx_{k+1} is delta_{k+1} = dE/da_{k+1}. Eq. 9, with the batch and step aggregation of their code:

    rho_{k,b} = || (W^T delta_{k+1,b}) * f'(a_{k,b}) || / || delta_{k+1,b} ||         (k = 1..T-1, b = 1..B)
    Omega     = sum over kept (k, b) of (rho_{k,b} - 1)^2 / (number of kept (k, b)),

kept meaning ||delta_{k+1,b}||^2 >= 1e-20. Omega asks the error to keep its norm as it travels back one step,
along the error's own direction. Eq. 10: its gradient with respect to W only, a_k and delta_{k+1} held constant,

    dOmega/dW = sum over kept (k, b) of 2 (rho - 1) / (||n|| ||delta_{k+1}|| N_kept) delta_{k+1} (n * f'(a_k))^T,

n = (W^T delta_{k+1}) * f'(a_k). Where n = 0 (for relu: every unit off at step k, so n = 0 for every W) the
term is 1 and its gradient is taken as 0.

The authors' code (github.com/pascanur/trainingRNNs, RNN.py, commit 3f5df3f):
- lines 189-215 build the term: ``tmp_reg`` over steps and batch; ``TT.grad(tmp_reg, W_hh)`` is taken on the
  placeholders ``d_ht`` and ``ht``, which ``theano.clone`` then replaces by dC/dh and h, so both are constants;
- line 207 drops steps with ||dC/dh_k||^2 < ``state['bound']`` = 1e-20 (lines 67, 490); lines 208-209,
  ``tmp_reg.mean(1).sum() / n_elems.sum()``, average over the batch, sum over time and divide by the sum over time
  of the batch's kept share: the mean over the kept (step, sequence) pairs, as here;
- lines 216-217 add ``alpha * dOmega/dW_hh`` to the loss gradient of W_hh, and lines 219-230 clip the total
  norm afterwards: the regulariser's gradient is added before clipping (alpha = 2 in the code's example
  configuration, line 467; 4 in the paper's temporal-order runs).
Where the code differs from eq. 9 (we follow the paper): it uses squared norms, (||.||^2 / ||.||^2 - 1)^2; it
measures the gradient with respect to the states h_k (dC/dh_k carried back to h_{k-1}, k = 1..T, the last
reaching h_0) rather than the pre-activations; with no kept step it divides 0 by 0, where this returns 0.
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
    back = carries[:-1] * slopes[:-1]  # dE/dx_{k+1} dx_{k+1}/dx_k = (W^T delta_{k+1}) * f'(a_k)
    up_sq = upstream.square().sum(-1)
    kept = up_sq >= BOUND
    n_kept = int(kept.sum())
    if n_kept == 0:
        return W.new_zeros(()), torch.zeros_like(W)
    up_norm = torch.where(kept, up_sq, 1.0).sqrt()
    back_norm = torch.linalg.vector_norm(back, dim=-1)
    excess = torch.where(kept, back_norm / up_norm - 1.0, 0.0)  # rho - 1, 0 where dropped
    value = excess.square().sum() / n_kept
    coef = torch.where(back_norm > 0, 2.0 * excess / (back_norm * up_norm * n_kept), 0.0)
    hidden = W.shape[0]
    grad = (upstream * coef[..., None]).reshape(-1, hidden).T @ (back * slopes[:-1]).reshape(-1, hidden)
    return value, grad
