"""The GRU (Cho et al. 2014), trained through torch's fused nn.GRU."""

from __future__ import annotations

import torch
from torch import nn

from rnngrad.models._base import FAN_IN, RecurrentModel, add_readout, fused


class GRU(RecurrentModel):
    """Gated recurrent unit (Cho et al. 2014), as torch computes it: r, z = sigma(W_i. x_t + b_i. + W_h. h + b_h.),
    n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn)), h_t = (1 - z) n + z h_{t-1}.

    Trained through torch's fused nn.GRU; :meth:`step` is the same cell per step on the same parameters."""

    recurrent_weights = {"W_hh": "gru.weight_hh_l0"}
    input_weights = ("gru.weight_ih_l0",)

    def __init__(self, n_in: int, hidden: int, n_out: int, seed: int = 0, readout_init: str | float = FAN_IN):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.gru = fused(nn.GRU, n_in, hidden, generator)
        add_readout(self, n_out, hidden, readout_init, generator)

    @property
    def hidden(self) -> int:
        return self.gru.hidden_size

    def step(self, x_t, state):
        (h,) = state
        gru = self.gru
        r_i, z_i, n_i = (x_t @ gru.weight_ih_l0.T + gru.bias_ih_l0).chunk(3, -1)
        r_h, z_h, n_h = (h @ gru.weight_hh_l0.T + gru.bias_hh_l0).chunk(3, -1)
        r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
        n = torch.tanh(n_i + r * n_h)
        return ((1 - z) * n + z * h,)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


MODEL = GRU
