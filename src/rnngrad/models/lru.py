"""The Linear Recurrent Unit (Orvieto et al. 2023): a diagonal complex recurrence stable by construction."""

from __future__ import annotations

import math

import torch
from torch import nn

from rnngrad.models._base import FAN_IN, RecurrentModel, add_readout


class LRU(RecurrentModel):
    """Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long sequences"):
    a diagonal complex linear recurrence s_t = lambda * s_{t-1} + gamma * (B x_t), lambda_j = exp(-exp(nu_j) +
    i exp(theta_j)), so |lambda_j| = exp(-exp(nu_j)) < 1 for every parameter value: the recurrence cannot explode,
    and the ring initialisation puts |lambda| uniformly on the ring [R_MIN, R_MAX] near 1, so it vanishes slowly.
    gamma_j = sqrt(1 - |lambda_j|^2) (the paper's normalisation, kept as a trained log). h_t = GELU(Re(C s_t)) is
    the per-step nonlinearity (the paper's block applies an MLP after the recurrence) that the readout reads.

    The complex state is kept as its real and imaginary parts, state (Re s, Im s); the step Jacobian is the real
    form of diag(lambda), whose spectral norm is max |lambda|."""

    R_MIN, R_MAX, MAX_PHASE = 0.9, 0.999, 2 * math.pi  # the paper's ring initialisation
    recurrent_weights = {"nu": "nu_log", "theta": "theta_log"}
    input_weights = ("B_re", "B_im")

    def __init__(self, n_in: int, hidden: int, n_out: int, seed: int = 0, readout_init: str | float = FAN_IN):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        u1, u2 = torch.rand(2, hidden, generator=generator, dtype=torch.float64)
        modulus_sq = u1 * (self.R_MAX**2 - self.R_MIN**2) + self.R_MIN**2  # |lambda|^2 uniform on the ring's area
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(modulus_sq)).float())
        self.theta_log = nn.Parameter(torch.log(self.MAX_PHASE * u2).float())
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - modulus_sq).float())
        normal = torch.randn(4, hidden, max(n_in, hidden), generator=generator, dtype=torch.float64)
        self.B_re = nn.Parameter((normal[0, :, :n_in] / math.sqrt(2 * n_in)).float())
        self.B_im = nn.Parameter((normal[1, :, :n_in] / math.sqrt(2 * n_in)).float())
        self.C_re = nn.Parameter((normal[2, :, :hidden] / math.sqrt(hidden)).float())
        self.C_im = nn.Parameter((normal[3, :, :hidden] / math.sqrt(hidden)).float())
        add_readout(self, n_out, hidden, readout_init, generator)

    @property
    def hidden(self) -> int:
        return self.nu_log.shape[0]

    def eigenvalues(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Re lambda and Im lambda."""
        modulus, phase = torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log)
        return modulus * torch.cos(phase), modulus * torch.sin(phase)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        zeros = x.new_zeros(x.shape[0], self.hidden)
        return zeros, zeros

    def _drive(self, x):
        gamma = torch.exp(self.gamma_log)
        return (x @ self.B_re.T) * gamma, (x @ self.B_im.T) * gamma

    def _advance(self, state, drive, lam):
        (re, im), (drive_re, drive_im), (lam_re, lam_im) = state, drive, lam
        return lam_re * re - lam_im * im + drive_re, lam_re * im + lam_im * re + drive_im

    def step(self, x_t, state):
        return self._advance(state, self._drive(x_t), self.eigenvalues())

    def output(self, state):
        re, im = state
        return nn.functional.gelu(re @ self.C_re.T - im @ self.C_im.T)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """The input drive of every step in one product, then the elementwise recurrence."""
        drive_re, drive_im = self._drive(x)
        lam, state, out = self.eigenvalues(), self.init_state(x), []
        for drive in zip(drive_re.unbind(1), drive_im.unbind(1), strict=True):
            state = self._advance(state, drive, lam)
            out.append(state)
        re, im = (torch.stack(part, 1) for part in zip(*out, strict=True))
        return self.output((re, im))

    def recurrent_matrix(self) -> torch.Tensor:
        """The real form [[diag(Re lambda), -diag(Im lambda)], [diag(Im lambda), diag(Re lambda)]]."""
        lam_re, lam_im = (torch.diag(part) for part in self.eigenvalues())
        return torch.cat([torch.cat([lam_re, -lam_im], 1), torch.cat([lam_im, lam_re], 1)])


MODEL = LRU
