"""What every model shares: the interface the generic decomposition reads (:class:`RecurrentModel`), the input and
readout initialisations, and torch's default initialisation of its fused recurrent modules drawn from a run's seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FAN_IN = "fan_in"  # the default input and readout initialisation (see input_weights)
GLOROT = "glorot"  # Glorot and Bengio 2010's uniform initialisation, as Arjovsky et al. 2016's code draws it


def glorot_bound(shape: tuple[int, int]) -> float:
    """sqrt(6 / (fan_in + fan_out)): the bound of Arjovsky et al.'s ``initialize_matrix`` (models.py, lines 6-12 of
    github.com/amarshah/complex_RNN at 3537fbf), uniform(-bound, bound), variance 2 / (fan_in + fan_out)."""
    return math.sqrt(6.0 / (shape[0] + shape[1]))


def input_weights(init: str | float, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Input (U) or readout (V) weights [out, in]: ``fan_in`` draws uniform(-1/sqrt(in), 1/sqrt(in)), as
    torch.nn.RNN and nn.Linear do; ``glorot`` draws uniform(-sqrt(6/(in+out)), sqrt(6/(in+out))), as Arjovsky et
    al. 2016's code (:func:`glorot_bound`); a number sigma draws N(0, sigma^2), as Pascanu et al. 2013
    (sigma = 0.01). Every draw comes from the run's generator."""
    if init == FAN_IN:
        return uniform(shape, 1.0 / math.sqrt(shape[1]), generator)
    if init == GLOROT:
        return uniform(shape, glorot_bound(shape), generator)
    if isinstance(init, bool) or not isinstance(init, int | float) or not init > 0 or not math.isfinite(init):
        raise ValueError(
            f"input_init/readout_init: {init!r} is invalid; allowed: {FAN_IN!r}, {GLOROT!r} or a number sigma > 0"
        )
    return torch.randn(shape, generator=generator, dtype=torch.float64) * float(init)


def add_readout(model: nn.Module, n_out: int, hidden: int, readout_init: str | float, generator) -> None:
    """The readout y_t = V h_t + c of a cell: V by ``readout_init`` (as :func:`input_weights`), c = 0."""
    model.V = nn.Parameter(input_weights(readout_init, (n_out, hidden), generator).float())
    model.c = nn.Parameter(torch.zeros(n_out))


def uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * bound


def torch_init(module: nn.Module, generator: torch.Generator) -> None:
    """torch's default initialisation of nn.LSTM and nn.GRU (every weight and bias uniform(-1/sqrt(H), 1/sqrt(H)))
    drawn from the run's own generator, not the global one."""
    bound = 1.0 / math.sqrt(module.hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(uniform(tuple(p.shape), bound, generator))


def fused(kind: type[nn.RNNBase], n_in: int, hidden: int, generator: torch.Generator) -> nn.RNNBase:
    with torch.random.fork_rng(devices=[]):  # its constructor draws an initialisation we overwrite at once
        module = kind(n_in, hidden, batch_first=True)
    torch_init(module, generator)
    return module


class RecurrentModel(nn.Module):
    """What every model offers the generic decomposition (:mod:`rnngrad.decompose`): a state s (a tuple of
    [batch, n_i] tensors), one step s_t = step(x_t, s_{t-1}), the hidden vector h_t = output(s_t) that the readout
    y_t = V h_t + c reads, and the names of the weights whose per-step contributions are logged.

    ``recurrent_weights`` maps a table name (the gradients table's ``weight`` column) to a parameter name;
    ``input_weights`` lists the parameters whose contributions add up to ``contribution_norm_U``."""

    recurrent_weights: dict[str, str] = {}
    input_weights: tuple[str, ...] = ()

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """s_0 = 0 for a batch of inputs x [batch, T, D]."""
        return (x.new_zeros(x.shape[0], self.hidden),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def output(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return state[0]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.V.T + self.c

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """h_1..h_T as [batch, T, H] by stepping the cell (a model overrides it with a faster path)."""
        state, out = self.init_state(x), []
        for x_t in x.unbind(1):
            state = self.step(x_t, state)
            out.append(self.output(state))
        return torch.stack(out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs y_t = V h_t + c as [batch, T, O]."""
        return self.readout(self.states(x))

    def recurrent_matrix(self) -> torch.Tensor | None:
        """The matrix whose sigma_max and spectral radius the spectrum table reports (None: no single one)."""
        return None

    def derivatives(self, states: torch.Tensor) -> torch.Tensor | None:
        """f'(a) for h_1..h_T [S, T, H] where the cell has one elementwise nonlinearity (None: it has not)."""
        return None
