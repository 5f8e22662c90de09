"""The LSTM (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000), trained through torch's fused nn.LSTM."""

from __future__ import annotations

import torch
from torch import nn

from rnngrad.models._base import FAN_IN, RecurrentModel, add_readout, fused


class LSTM(RecurrentModel):
    """Long short-term memory (Hochreiter & Schmidhuber 1997) with a forget gate (Gers et al. 2000), as torch
    computes it: i, f, g, o = sigma(.), sigma(.), tanh(.), sigma(.) of W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,
    c_t = f c_{t-1} + i g, h_t = o tanh(c_t); state (h, c).

    Training runs torch's fused nn.LSTM over the whole sequence; :meth:`step` is the same cell written per step on
    the same parameters, for the decomposition (a test holds both equal). ``forget_bias``: None keeps torch's
    uniform initialisation of every bias; a number b sets the forget gate's total bias to b (b_ih = b, b_hh = 0),
    the remedy of Gers et al. 2000 and Jozefowicz et al. 2015 (b = 1) against the cell's own vanishing."""

    recurrent_weights = {"W_hh": "lstm.weight_hh_l0"}
    input_weights = ("lstm.weight_ih_l0",)

    def __init__(
        self,
        n_in: int,
        hidden: int,
        n_out: int,
        seed: int = 0,
        readout_init: str | float = FAN_IN,
        forget_bias: float | None = None,
    ):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.lstm = fused(nn.LSTM, n_in, hidden, generator)
        add_readout(self, n_out, hidden, readout_init, generator)
        if forget_bias is not None:
            with torch.no_grad():
                self.lstm.bias_ih_l0[hidden : 2 * hidden] = forget_bias
                self.lstm.bias_hh_l0[hidden : 2 * hidden] = 0.0

    @property
    def hidden(self) -> int:
        return self.lstm.hidden_size

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        zeros = x.new_zeros(x.shape[0], self.hidden)
        return zeros, zeros

    def step(self, x_t, state):
        h, c = state
        lstm = self.lstm
        gates = x_t @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def states(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


MODEL = LSTM
