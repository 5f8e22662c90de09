"""The vanilla RNN of the lecture (Elman 1990), its activations and initialisations.

h_t = f(a_t),  a_t = W h_{t-1} + U x_t + b,  h_0 = 0,  y_t = V h_t + c.

The recurrence runs through :class:`Recurrence`, an autograd function whose backward pass is the explicit
backpropagation through time of the lecture (delta_k = (W^T delta_{k+1} + dL/dh_k) * f'(a_k)): it is the same
recursion that :mod:`rnngrad.gradients` splits into per-step contributions, and it is faster than autograd over
a Python loop because the parameter gradients are three large matrix products instead of 3T small ones.
Initialisations: orthogonal (Saxe et al. 2014), gaussian (the mean-field setting), identity (the IRNN of Le et al.
2015), sparse (Pascanu et al. 2013, after Sutskever et al. 2013).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from rnngrad.models._base import FAN_IN, RecurrentModel, input_weights


@dataclass(frozen=True)
class Activation:
    """A nonlinearity f (and f_, the same in place) with its derivative f' and gamma = max |f'|.

    f' is written in terms of h = f(a), exactly for all three (relu: h > 0 iff a > 0), so the backward pass
    needs only the states it already keeps.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    f_: Callable[[torch.Tensor], torch.Tensor]
    df: Callable[[torch.Tensor], torch.Tensor]
    gamma: float


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", torch.tanh, torch.tanh_, lambda h: 1.0 - h * h, 1.0),
    "sigmoid": Activation("sigmoid", torch.sigmoid, torch.sigmoid_, lambda h: h * (1.0 - h), 0.25),
    "relu": Activation("relu", torch.relu, torch.relu_, lambda h: (h > 0).to(h.dtype), 1.0),
}
INITS = ("orthogonal", "gaussian", "identity", "sparse")


def activation(name: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: unknown value {name!r}; allowed: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def recurrent_init(init: str, scale: float, hidden: int, generator: torch.Generator, nonzero: int = 15) -> torch.Tensor:
    """W for a recurrent initialisation of scale g (float64, so that it is exact before the model's cast).

    orthogonal: W = g Q with Q Haar-orthogonal, so every singular value of W is g;
    gaussian:   W_ij ~ N(0, g^2 / H), spectral radius about g for large H;
    identity:   W = g I (the IRNN of Le et al. 2015 with relu);
    sparse:     ``nonzero`` N(0, 1) weights a unit, the rest 0, rescaled to spectral radius exactly g (Pascanu et al.
                2013's "smart tanh": 15 a unit, radius 0.95). As in the authors' code (RNN.py, ``smart_tanh``: row dx
                of W_hh keeps 15 entries, and h_t = tanh(h_{t-1} W_hh)), the kept weights are the ones a unit sends,
                so here each column of W (a = W h) has ``nonzero`` entries.
    """
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError(f"scale: must be a finite number > 0, got {scale!r}")
    if init == "orthogonal":
        z = torch.randn(hidden, hidden, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(z)
        q = q * torch.sign(torch.diagonal(r))  # Haar measure: fix the signs of the QR factorisation
        return scale * q
    if init == "gaussian":
        return torch.randn(hidden, hidden, generator=generator, dtype=torch.float64) * (scale / math.sqrt(hidden))
    if init == "identity":
        return scale * torch.eye(hidden, dtype=torch.float64)
    if init == "sparse":
        return sparse_init(scale, hidden, nonzero, generator)
    raise ValueError(f"init: unknown value {init!r}; allowed: {list(INITS)}")


def sparse_init(radius: float, hidden: int, nonzero: int, generator: torch.Generator) -> torch.Tensor:
    """``nonzero`` N(0, 1) weights in each column of W (the weights a unit sends), rescaled to spectral radius
    ``radius``. Every unit keeps min(nonzero, H) weights, so the kept weights hold a cycle of units and the radius
    to rescale is positive (almost surely)."""
    if nonzero < 1:
        raise ValueError(f"init_nonzero: must be an integer >= 1, got {nonzero!r}")
    w = torch.randn(hidden, hidden, generator=generator, dtype=torch.float64)
    for unit in range(hidden):
        dropped = torch.randperm(hidden, generator=generator)[nonzero:]
        w[dropped, unit] = 0.0
    rho = float(torch.linalg.eigvals(w).abs().max())
    return w * (radius / rho)


class Recurrence(torch.autograd.Function):
    """H = [h_1..h_T] from x, W, U, b with an explicit backpropagation through time."""

    @staticmethod
    def forward(ctx, x, W, U, b, act_name: str):  # noqa: N803 - the lecture's names
        act = ACTIVATIONS[act_name]
        batch, steps, _ = x.shape
        inputs = x.transpose(0, 1)  # step-major [T, batch, D]: every per-step slice below is contiguous
        states = torch.addmm(b, inputs.reshape(steps * batch, -1), U.T).reshape(steps, batch, -1)  # U x_t + b
        h = states.new_zeros(batch, W.shape[0])
        w_t = W.T
        for a in states.unbind(0):  # a_t = W h_{t-1} + U x_t + b, then h_t = f(a_t), both in place
            h = act.f_(a.addmm_(h, w_t))
        ctx.act_name = act_name
        ctx.save_for_backward(inputs, W, states)
        return states.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_states):
        inputs, W, states = ctx.saved_tensors
        act = ACTIVATIONS[ctx.act_name]
        steps, batch, hidden = states.shape
        prev = torch.cat([states.new_zeros(1, batch, hidden), states[:-1]])
        deltas = act.df(states)  # f'(a_t), turned into delta_t in place below
        carry = states.new_zeros(batch, hidden)  # dL/dh_t arriving from step t+1: W^T delta_{t+1}
        for grad, delta in zip(
            reversed(grad_states.transpose(0, 1).unbind(0)), reversed(deltas.unbind(0)), strict=True
        ):
            carry = delta.mul_(grad + carry) @ W  # delta_t = (dL/dh_t + W^T delta_{t+1}) * f'(a_t)
        flat_deltas = deltas.reshape(steps * batch, hidden)
        grad_W = flat_deltas.T @ prev.reshape(steps * batch, hidden)
        grad_U = flat_deltas.T @ inputs.reshape(steps * batch, -1)
        grad_b = flat_deltas.sum(0)
        return None, grad_W, grad_U, grad_b, None


class VanillaRNN(RecurrentModel):
    """The lecture's RNN with parameters named W, U, b, V, c."""

    recurrent_weights = {"W": "W"}
    input_weights = ("U",)

    def __init__(
        self,
        n_in: int,
        hidden: int,
        n_out: int,
        activation_name: str = "tanh",
        init: str = "orthogonal",
        scale: float = 1.0,
        seed: int = 0,
        input_init: str | float = FAN_IN,
        readout_init: str | float = FAN_IN,
        init_nonzero: int = 15,
    ):
        super().__init__()
        self.act = activation(activation_name)
        generator = torch.Generator().manual_seed(seed)  # W, then U, then V: all from the run's seed
        self.W = nn.Parameter(recurrent_init(init, scale, hidden, generator, init_nonzero).float())
        self.U = nn.Parameter(input_weights(input_init, (hidden, n_in), generator).float())
        self.b = nn.Parameter(torch.zeros(hidden))  # biases 0, as in every paper the project follows
        self.V = nn.Parameter(input_weights(readout_init, (n_out, hidden), generator).float())
        self.c = nn.Parameter(torch.zeros(n_out))

    @property
    def hidden(self) -> int:
        return self.W.shape[0]

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """h_1..h_T as [batch, T, H]."""
        return Recurrence.apply(x, self.W, self.U, self.b, self.act.name)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """h_t = f(W h_{t-1} + U x_t + b), the per-step form the generic decomposition differentiates."""
        return (self.act.f(state[0] @ self.W.T + x_t @ self.U.T + self.b),)

    def recurrent_matrix(self) -> torch.Tensor:
        return self.W

    def derivatives(self, states: torch.Tensor) -> torch.Tensor:
        return self.act.df(states)


MODEL = VanillaRNN
