"""The Linear Recurrent Unit (Orvieto et al. 2023): a diagonal complex recurrence stable by construction."""

from __future__ import annotations

import math

import torch
from torch import nn

from rnngrad.models._base import FAN_IN, RecurrentModel, add_readout, input_weights


class LRU(RecurrentModel):
    """One block of the Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for
    long sequences"): a diagonal complex linear recurrence s_t = lambda * s_{t-1} + gamma * (B u_t),
    lambda_j = exp(-exp(nu_j) + i exp(theta_j)), so |lambda_j| = exp(-exp(nu_j)) < 1 for every parameter value:
    the recurrence cannot explode, and the ring initialisation puts |lambda| uniformly on the ring [R_MIN, R_MAX]
    near 1, so it vanishes slowly. gamma_j = sqrt(1 - |lambda_j|^2) (the paper's normalisation, kept as a trained
    log). In a stack of LRU blocks each recurrence reads the per-step MLP of the block before; here that is
    u_t = GELU(E x_t + e), without which a linear recurrence could not form the adding task's products of a value
    and its marker. h_t = GELU(Re(C s_t)) is what the readout reads.

    The complex state is kept as its real and imaginary parts, state (Re s, Im s); the step Jacobian is the real
    form of diag(lambda), whose spectral norm is max |lambda|. Training unrolls the recurrence as a scan in
    log2(T) doubling steps (s_t += lambda^m s_{t-m}, m = 1, 2, 4, ...; exact, as lambda does not depend on t);
    :meth:`step` is the same recurrence one step at a time."""

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
        self.E = nn.Parameter(input_weights(FAN_IN, (hidden, n_in), generator).float())
        self.e = nn.Parameter(torch.zeros(hidden))
        normal = torch.randn(4, hidden, hidden, generator=generator, dtype=torch.float64)
        self.B_re = nn.Parameter((normal[0] / math.sqrt(2 * hidden)).float())
        self.B_im = nn.Parameter((normal[1] / math.sqrt(2 * hidden)).float())
        self.C_re = nn.Parameter((normal[2] / math.sqrt(hidden)).float())
        self.C_im = nn.Parameter((normal[3] / math.sqrt(hidden)).float())
        add_readout(self, n_out, hidden, readout_init, generator)

    @property
    def hidden(self) -> int:
        return self.nu_log.shape[0]

    def eigenvalues(self, power: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Re and Im of lambda^power."""
        modulus, phase = torch.exp(-power * torch.exp(self.nu_log)), power * torch.exp(self.theta_log)
        return modulus * torch.cos(phase), modulus * torch.sin(phase)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        zeros = x.new_zeros(x.shape[0], self.hidden)
        return zeros, zeros

    def _drive(self, x):
        """gamma * (B u) with u = GELU(E x + e), as (Re, Im), for inputs of any leading shape."""
        u = nn.functional.gelu(x @ self.E.T + self.e)
        gamma = torch.exp(self.gamma_log)
        return (u @ self.B_re.T) * gamma, (u @ self.B_im.T) * gamma

    def step(self, x_t, state):
        (re, im), (drive_re, drive_im), (lam_re, lam_im) = state, self._drive(x_t), self.eigenvalues()
        return lam_re * re - lam_im * im + drive_re, lam_re * im + lam_im * re + drive_im

    def output(self, state):
        re, im = state
        return nn.functional.gelu(re @ self.C_re.T - im @ self.C_im.T)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """s_1..s_T from s_0 = 0 by the doubling scan: after the pass with offset m, s_t sums the 2m latest
        drives, lambda^(t-k) gamma B u_k."""
        re, im = self._drive(x)
        m = 1
        while m < x.shape[1]:
            lam_re, lam_im = self.eigenvalues(m)
            back_re, back_im = re[:, :-m], im[:, :-m]
            re = torch.cat([re[:, :m], re[:, m:] + lam_re * back_re - lam_im * back_im], 1)
            im = torch.cat([im[:, :m], im[:, m:] + lam_re * back_im + lam_im * back_re], 1)
            m *= 2
        return self.output((re, im))

    def recurrent_matrix(self) -> torch.Tensor:
        """The real form [[diag(Re lambda), -diag(Im lambda)], [diag(Im lambda), diag(Re lambda)]]."""
        lam_re, lam_im = (torch.diag(part) for part in self.eigenvalues())
        return torch.cat([torch.cat([lam_re, -lam_im], 1), torch.cat([lam_im, lam_re], 1)])


MODEL = LRU
