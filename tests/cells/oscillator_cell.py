"""A user's cell that lives outside rnngrad's package, as a user would write it: coupled oscillators (Rusch and
Mishra 2021, coRNN) with the tuple state (h, z), positions and velocities.

    z_t = z_{t-1} + dt (tanh(W h_{t-1} + U x_t + b) - gamma h_{t-1} - eps z_{t-1}),   h_t = h_{t-1} + dt z_t

The tests copy this file into a folder on PYTHONPATH or named by a config's ``cells_path``, and edit the copy.
"""

import torch
from torch import nn


class CoupledOscillator(nn.Module):
    recurrent_weights = ["W"]  # C_{t,k} is logged for W; U is an input weight
    input_weights = ["U"]

    def __init__(self, n_in: int, hidden: int, dt: float = 0.1, gamma: float = 1.0, eps: float = 1.0):
        super().__init__()
        self.hidden, self.dt, self.gamma, self.eps = hidden, dt, gamma, eps
        self.W = nn.Parameter(torch.randn(hidden, hidden) / hidden**0.5)
        self.U = nn.Parameter(torch.randn(hidden, n_in) / n_in**0.5)
        self.b = nn.Parameter(torch.zeros(hidden))

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = x.new_zeros(x.shape[0], self.hidden)
        return zeros, zeros

    def forward(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, z = state
        z = z + self.dt * (torch.tanh(h @ self.W.T + x_t @ self.U.T + self.b) - self.gamma * h - self.eps * z)
        return h + self.dt * z, z

    def output(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return state[0]
