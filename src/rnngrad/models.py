"""The vanilla RNN of the lecture, its activations and initialisations, and an LSTM baseline.

h_t = f(a_t),  a_t = W h_{t-1} + U x_t + b,  h_0 = 0,  y_t = V h_t + c.

The recurrence runs through :class:`Recurrence`, an autograd function whose backward pass is the explicit
backpropagation through time of the lecture (delta_k = (W^T delta_{k+1} + dL/dh_k) * f'(a_k)): it is the same
recursion that :mod:`rnngrad.gradients` splits into per-step contributions, and it is faster than autograd over
a Python loop because the parameter gradients are three large matrix products instead of 3T small ones.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


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
FAN_IN = "fan_in"  # the default input and readout initialisation (see VanillaRNN)


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


def input_weights(init: str | float, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Input (U) or readout (V) weights [out, in]: ``fan_in`` draws uniform(-1/sqrt(in), 1/sqrt(in)), as
    torch.nn.RNN and nn.Linear do; a number sigma draws N(0, sigma^2), as Pascanu et al. 2013 (sigma = 0.01)."""
    if init == FAN_IN:
        return _uniform(shape, 1.0 / math.sqrt(shape[1]), generator)
    if isinstance(init, bool) or not isinstance(init, int | float) or not init > 0 or not math.isfinite(init):
        raise ValueError(f"input_init/readout_init: {init!r} is invalid; allowed: {FAN_IN!r} or a number sigma > 0")
    return torch.randn(shape, generator=generator, dtype=torch.float64) * float(init)


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * bound


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


def _torch_init(module: nn.Module, generator: torch.Generator) -> None:
    """torch's default initialisation of nn.LSTM and nn.GRU (every weight and bias uniform(-1/sqrt(H), 1/sqrt(H)))
    drawn from the run's own generator, not the global one."""
    bound = 1.0 / math.sqrt(module.hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_uniform(tuple(p.shape), bound, generator))


def _fused(kind: type[nn.RNNBase], n_in: int, hidden: int, generator: torch.Generator) -> nn.RNNBase:
    with torch.random.fork_rng(devices=[]):  # its constructor draws an initialisation we overwrite at once
        module = kind(n_in, hidden, batch_first=True)
    _torch_init(module, generator)
    return module


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

    def __init__(self, n_in: int, hidden: int, n_out: int, seed: int = 0, forget_bias: float | None = None):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.lstm = _fused(nn.LSTM, n_in, hidden, generator)
        self.V = nn.Parameter(_uniform((n_out, hidden), 1.0 / math.sqrt(hidden), generator).float())
        self.c = nn.Parameter(torch.zeros(n_out))
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


LSTMBaseline = LSTM  # the name the LSTM had before the cell registry


class GRU(RecurrentModel):
    """Gated recurrent unit (Cho et al. 2014), as torch computes it: r, z = sigma(W_i. x_t + b_i. + W_h. h + b_h.),
    n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn)), h_t = (1 - z) n + z h_{t-1}.

    Trained through torch's fused nn.GRU; :meth:`step` is the same cell per step on the same parameters."""

    recurrent_weights = {"W_hh": "gru.weight_hh_l0"}
    input_weights = ("gru.weight_ih_l0",)

    def __init__(self, n_in: int, hidden: int, n_out: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.gru = _fused(nn.GRU, n_in, hidden, generator)
        self.V = nn.Parameter(_uniform((n_out, hidden), 1.0 / math.sqrt(hidden), generator).float())
        self.c = nn.Parameter(torch.zeros(n_out))

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

    def __init__(self, n_in: int, hidden: int, n_out: int, seed: int = 0):
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
        self.V = nn.Parameter(_uniform((n_out, hidden), 1.0 / math.sqrt(hidden), generator).float())
        self.c = nn.Parameter(torch.zeros(n_out))

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


class CellModel(RecurrentModel):
    """A user's cell as a model: any nn.Module whose ``forward(x_t, state)`` returns the next state, a [batch, n]
    tensor or a tuple of them. Optional, on the cell: ``init_state(x)`` (s_0 for inputs [batch, T, D]; default
    zeros of [batch, hidden]), ``output(state)`` (the h the readout reads; default the state, or its first part),
    ``recurrent_weights`` and ``input_weights`` (names of its parameters; default every parameter recurrent).

    The readout is y_t = V h_t + c (``n_out`` outputs, initialised like the vanilla RNN's) or, with ``n_out``
    None, y_t = h_t, for a loss that reads the cell's output directly."""

    def __init__(self, cell: nn.Module, hidden: int, n_out: int | None = None, seed: int = 0):
        super().__init__()
        self.cell, self._hidden = cell, hidden
        names = getattr(cell, "recurrent_weights", [name for name, _ in cell.named_parameters()])
        self.recurrent_weights = {name: f"cell.{name}" for name in names}
        self.input_weights = tuple(f"cell.{name}" for name in getattr(cell, "input_weights", ()))
        if n_out is not None:
            generator = torch.Generator().manual_seed(seed)
            self.V = nn.Parameter(_uniform((n_out, hidden), 1.0 / math.sqrt(hidden), generator).float())
            self.c = nn.Parameter(torch.zeros(n_out))

    @property
    def hidden(self) -> int:
        return self._hidden

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if hasattr(self.cell, "init_state"):
            return _as_tuple(self.cell.init_state(x))
        return super().init_state(x)

    def step(self, x_t, state):
        return _as_tuple(self.cell(x_t, state[0] if len(state) == 1 else state))

    def output(self, state):
        if hasattr(self.cell, "output"):
            return self.cell.output(state[0] if len(state) == 1 else state)
        return state[0]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return super().readout(h) if hasattr(self, "V") else h


def _as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else tuple(state) if isinstance(state, list) else (state,)


MODELS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU, "lru": LRU}


def load_cell(target: str) -> type[nn.Module]:
    """The class a ``module:Class`` string names (the module importable, e.g. on PYTHONPATH)."""
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"{target!r} is not of the form module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} ({err}); is it on PYTHONPATH?") from err
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{module_name}.{class_name} is not an nn.Module subclass")
    return cls


def user_model(target: str, n_in: int, hidden: int, n_out: int, seed: int = 0) -> CellModel:
    """A user's cell ``module:Class``, built as Class(n_in, hidden) with torch's generator seeded from the run's
    seed (restored afterwards), under the readout y_t = V h_t + c."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cell = load_cell(target)(n_in, hidden)
    return CellModel(cell, hidden, n_out, seed)


def check_cell(target: str) -> None:
    """Build a user's cell at toy sizes and run two steps and its readout: ValueError saying what failed."""
    load_cell(target)
    try:
        user_model(target, 3, 4, 2)(torch.zeros(2, 2, 3))
    except Exception as err:  # noqa: BLE001 - any failure of foreign code is reported, with its message
        raise ValueError(
            f"{target} does not fit the cell signature Class(n_in, hidden), forward(x_t, state) -> state "
            f"(state [batch, n] or a tuple of them, output h_t of hidden units): {type(err).__name__}: {err}"
        ) from err


def build_model(model: str, n_in: int, hidden: int, n_out: int, cell: str | None = None, **kwargs) -> RecurrentModel:
    """The model named ``model`` (or the user's ``cell``, module:Class); keyword arguments its class does not take
    (an RNN's activation for an LSTM, say) are left out, so that one call site builds every cell from a run spec."""
    if cell is not None:
        return user_model(cell, n_in, hidden, n_out, kwargs.get("seed", 0))
    if model not in MODELS:
        raise ValueError(f"model: unknown value {model!r}; allowed: {list(MODELS)}")
    cls = MODELS[model]
    accepted = inspect.signature(cls).parameters
    return cls(n_in, hidden, n_out, **{key: value for key, value in kwargs.items() if key in accepted})
