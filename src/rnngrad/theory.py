"""Closed forms from a run's spec alone, never from measured data: the product bound, mean-field Lyapunov
exponents and memory times, the fixed points of a one-unit RNN and its error cliff.

Sources: Pascanu, Mikolov and Bengio 2013 (ICML): the product bound (eqs. 5-7), the one-unit bifurcation (Fig. 3),
the error surface (Fig. 6) and clipping (Algorithm 1). Mean field: Molgedey, Schuchhardt and Schuster 1992 (tanh,
gaussian W, no input), Chen, Pennington and Schoenholz 2018 (vanilla RNNs with input), Schoenholz et al. 2017
(memory/depth scales). All arithmetic is float64. Fits of measured rates live in :mod:`rnngrad.analysis`.

Conventions: a "rate" is the slope of the natural log of a norm against the distance t - k, in nats per step;
negative rates vanish, positive rates explode, and 1/|rate| is the memory time in steps.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from rnngrad import tasks
from rnngrad.models import ACTIVATIONS, VanillaRNN

# ------------------------------------------------------------------------------------------------------------
# The product bound (Pascanu et al. 2013, eqs. 5-7)


def product_bound(gamma, sigma_max, distance):
    """(gamma sigma_max)^distance, bound on ||dh_t/dh_k|| at distance t - k (Pascanu et al. 2013, eqs. 6-7).

    Each Jacobian diag(f'(a_j)) W has spectral norm <= gamma * sigma_max(W), and norms are submultiplicative.
    Overflows to inf for long distances; use :func:`log_product_bound` to compare with measurements.
    """
    return np.power(np.multiply(gamma, sigma_max, dtype=np.float64), distance)


def log_product_bound(gamma, sigma_max, distance):
    """distance * ln(gamma sigma_max): log of :func:`product_bound`, finite where that over/underflows."""
    with np.errstate(divide="ignore"):
        return np.multiply(distance, np.log(np.multiply(gamma, sigma_max, dtype=np.float64)))


# ------------------------------------------------------------------------------------------------------------
# Mean field: Lyapunov exponent and memory time of a random RNN at initialisation, from the spec alone
#
# a_t = W h_{t-1} + U x_t, h = f(a), b = 0. For a wide network the pre-activations of the units at one step are
# taken to be N(0, q_t), independent of the weights they meet next (the mean-field assumption). Then
#   q_{t+1} = g^2 E[f(a)^2] + s^2,  a ~ N(0, q_t),  s^2 = the variance of (U x_t)_i (see input_variance),
# and a tangent vector v (a row of the backpropagated product) changes its squared norm by
# g^2 E[f'(a)^2] per step, so lambda = 0.5 ln(g^2 E[f'(a)^2]) at the fixed point q* reached from q_1 = s^2.
# Gaussian W (W_ij ~ N(0, g^2/H)): the classic setting (Molgedey et al. 1992 without input; Chen et al. 2018 with
# input). Orthogonal W = g Q: ||W v|| = g ||v|| exactly and Q v points in a uniformly random direction, so the
# same two moments give the same q* and lambda; what orthogonality changes (Chen et al. 2018) is the spread of the
# singular values of the product, not this average growth rate. Identity W = g I: the units decouple; each is a
# one-unit RNN, and lambda is the largest of their scalar rates (see scalar_rate): ln g for relu (a unit whose
# pre-activation stays positive) and for tanh with g <= 1 (every unit has rate <= ln g, and one with drive near 0
# attains it). Elsewhere (sigmoid; tanh with g > 1) the largest rate belongs to the unit whose drive puts it nearest
# a saddle-node bifurcation, which depends on the extremes of the drive, not on its variance: NaN, no mean field.

MEAN_FIELD_INITS = ("orthogonal", "gaussian", "identity")
# Pascanu et al.'s sparse W: its scale is a spectral radius, and the row norms it gives depend on the number of
# non-zero weights and on H, so no mean field is claimed for it (NaN: no theory is drawn).
NO_MEAN_FIELD_INIT = "sparse"


def input_variance(task: str, T: float, variant: str, input_init: str = "fan_in", hidden: int | None = None) -> float:  # noqa: N803
    """s^2 = Var((U x_t)_i) = E_t ||x_t||^2 Var(U_ij): 1/(3D) for the default U_ij ~ uniform(-1/sqrt(D), 1/sqrt(D))
    (input_init "fan_in"), 2/(D+H) for Glorot's uniform(-sqrt(6/(D+H)), sqrt(6/(D+H))) (input_init "glorot", which
    needs ``hidden`` H), sigma^2 for U_ij ~ N(0, sigma^2) (input_init a number, as the tables write it).

    The input drive, averaged over the steps of a sequence (the task's own input_moments, at its default
    parameters) and over the random U; NaN for an unknown task (no theory is drawn then)."""
    if task not in tasks.REGISTRY:
        return math.nan
    _, mean_square = tasks.input_moments(task, round(T), variant)
    if input_init == "fan_in":
        return mean_square / (3.0 * tasks.n_inputs(task))
    if input_init == "glorot":
        return math.nan if hidden is None else mean_square * 2.0 / (tasks.n_inputs(task) + hidden)
    return mean_square * float(input_init) ** 2


def one_unit_drive(task: str, T: int, variant: str, activation: str, scale: float, seed: int) -> float:  # noqa: N803
    """u . E_t[x_t], the mean drive of a one-unit identity-initialised RNN at initialisation: u is the input weight
    row that the spec's seed draws (rnngrad.models.VanillaRNN; W = g I draws no random numbers before it), E_t[x_t]
    the task's mean input (its input_moments at its default parameters)."""
    mean_input, _ = tasks.input_moments(task, T, variant)
    model = VanillaRNN(tasks.n_inputs(task), 1, 1, activation, "identity", scale, seed)
    return float(model.U.detach().double()[0] @ torch.from_numpy(mean_input))


def _gauss_mean(n_quad: int = 4001, z_max: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with sum(w * f(z)) = E[f(z)], z ~ N(0, 1): the trapezoid rule on [-z_max, z_max].

    Not Gauss-Hermite: tanh^2(sqrt(q) z) and sech^4(sqrt(q) z) have features of width 1/sqrt(q) that no
    low-degree polynomial follows, and numpy's hermegauss overflows beyond ~300 nodes. With 101 Gauss-Hermite
    nodes lambda(4) comes out 0.455, with 201 nodes 0.4344, against 0.43288 (mpmath, 30 digits). The trapezoid
    rule is spectrally accurate for smooth, fast-decaying integrands as long as the spacing resolves 1/sqrt(q).
    """
    z = np.linspace(-z_max, z_max, n_quad)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


def _f_df(activation: str, a) -> tuple[np.ndarray, np.ndarray]:
    """f(a) and f'(a) in float64 from the one activation registry (rnngrad.models.ACTIVATIONS)."""
    act = ACTIVATIONS[activation]
    h = act.f(torch.as_tensor(np.asarray(a, dtype=np.float64)))
    return h.numpy(), act.df(h).numpy()


def mean_field_variance(activation: str, g: float, input_var: float = 0.0) -> float:
    """q*, the stationary pre-activation variance: the fixed point of q = g^2 E[f(sqrt(q) z)^2] + s^2 reached
    from q_1 = s^2 (h_0 = 0); inf where q grows without bound (relu with g^2 / 2 >= 1).

    relu: E[relu(a)^2] = q / 2, so q* = s^2 / (1 - g^2/2). tanh, sigmoid: bisection on ln q of
    r(q) = (g^2 E[f^2] + s^2) / q - 1, which falls strictly (E[f(sqrt(q) z)^2] is concave in q and >= 0) and is
    <= 0 at q = g^2 + s^2 (|f| <= 1). tanh without input and g <= 1: q* = 0 (r < 0 everywhere); with g > 1 the
    nonzero root, the one any perturbation reaches. Plain iteration needs ~1/|1 - slope| steps near g = 1.
    """
    if activation == "relu":
        return input_var / (1.0 - 0.5 * g * g) if 0.5 * g * g < 1.0 else math.inf
    z, w = _gauss_mean()

    def excess(log_q: float) -> float:
        q = math.exp(log_q)
        return (g * g * float(np.sum(w * _f_df(activation, math.sqrt(q) * z)[0] ** 2)) + input_var) / q - 1.0

    lo, hi = math.log(1e-300), math.log(g * g + input_var)
    if excess(lo) <= 0:
        return 0.0
    while hi - lo > 1e-15:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return math.exp(0.5 * (lo + hi))


@cache  # a pure function of its numbers: the contribution rate asks again for each setting
def _lyapunov_one(activation: str, init: str, g: float, input_var: float) -> float:
    if not math.isfinite(input_var):
        return math.nan
    if init == "identity":  # relu: every unit that stays on; tanh, g <= 1: f' <= 1, attained as the drive -> 0
        return math.log(g) if activation == "relu" or (activation == "tanh" and g <= 1) else math.nan
    if init == NO_MEAN_FIELD_INIT:
        return math.nan
    if init not in MEAN_FIELD_INITS:
        raise ValueError(f"init: unknown value {init!r}; allowed: {[*MEAN_FIELD_INITS, NO_MEAN_FIELD_INIT]}")
    if activation == "relu":  # E[relu'(a)^2] = P(a > 0) = 1/2 for any q > 0
        return 0.5 * math.log(0.5 * g * g)
    q = mean_field_variance(activation, g, input_var)
    z, w = _gauss_mean()
    return 0.5 * math.log(g * g * float(np.sum(w * _f_df(activation, math.sqrt(q) * z)[1] ** 2)))


def mean_field_lyapunov(activation: str, init: str, g, input_var: float = 0.0):
    """lambda = 0.5 ln(g^2 E[f'(a)^2]), a ~ N(0, q*), for orthogonal and gaussian W (identity: see the section comment).

    Closed forms: relu 0.5 ln(g^2/2) = ln g - 0.35 for orthogonal and gaussian W, ln g for identity; tanh without
    input ln g for g <= 1; small g and small input: ln(g f'(0)). NaN for a task without input statistics, for
    the identity init where no mean field exists (see the section comment) and for the sparse init. ``g`` a
    scalar (-> float) or an array."""
    gs = np.asarray(g, dtype=np.float64)
    out = np.vectorize(lambda value: _lyapunov_one(activation, init, float(value), input_var), otypes=[float])(gs)
    return float(out) if out.ndim == 0 else out


def state_growth_rate(activation: str, init: str, g, input_var: float = 0.0):
    """Per-step growth rate of ||h_t|| in the mean field: 0 where q* is finite (tanh, sigmoid are bounded);
    for relu max(0, lambda), because relu(a) = relu'(a) a makes the state itself a tangent vector."""
    lam = mean_field_lyapunov(activation, init, g, input_var)
    return (np.maximum(lam, 0.0) if activation == "relu" else np.zeros(np.shape(lam)))[()]


def mean_field_contribution_rate(activation: str, init: str, g, input_var: float = 0.0):
    """Predicted slope of ln ||C_{t,k}|| against t - k: C_{t,k} = delta_{t,k} h_{k-1}^T, ||delta_{t,k}|| grows
    as e^{lambda (t-k)} and ||h_{k-1}|| as e^{rho (k-1)}, so the slope is lambda - rho (rho: state_growth_rate).
    It differs from lambda only for relu with lambda > 0, where it is 0: the contributions stay flat."""
    return mean_field_lyapunov(activation, init, g, input_var) - state_growth_rate(activation, init, g, input_var)


def memory_time(activation: str, init: str, g, input_var: float = 0.0):
    """xi = 1/|lambda|: the steps over which the backpropagated norm falls (lambda < 0) or grows (lambda > 0) by a
    factor e; inf at lambda = 0. Trainable lengths are expected to be a small multiple of xi (Schoenholz et al.
    2017 found about 6 xi for the depth of feed-forward nets; Chen et al. 2018 carry the idea over to time)."""
    with np.errstate(divide="ignore"):
        return 1.0 / np.abs(mean_field_lyapunov(activation, init, g, input_var))


# ------------------------------------------------------------------------------------------------------------
# The one-unit RNN x_t = w sigmoid(x_{t-1}) + b (Pascanu et al. 2013, Figs. 3 and 6)


def sigmoid(x):
    """Logistic sigmoid written with tanh, so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def one_unit_error(w, b, steps: int = 50, x0: float = 0.5, target: float = 0.7):
    """E = (sigmoid(x_steps) - target)^2, x_t = w sigmoid(x_{t-1}) + b, x_0 = x0 (Pascanu et al. 2013 Fig. 6).

    Vectorised over broadcastable arrays w and b (float64).
    """
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, x0, dtype=np.float64)
    for _ in range(steps):
        x = w * sigmoid(x) + b
    return (sigmoid(x) - target) ** 2


def one_unit_gradient(w, b, steps: int = 50, x0: float = 0.5, target: float = 0.7):
    """(dE/dw, dE/db) of :func:`one_unit_error`, exactly, by forward-mode differentiation of the recursion:

    dx_t/dw = s(x_{t-1}) + w s'(x_{t-1}) dx_{t-1}/dw,  dx_t/db = 1 + w s'(x_{t-1}) dx_{t-1}/db,
    dE/d. = 2 (s(x_T) - target) s'(x_T) dx_T/d.   with s' = s (1 - s).
    The factor prod_t w s'(x_{t-1}) is the one-unit Jacobian product: it is huge at the wall.
    """
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, x0, dtype=np.float64)
    dx_dw = np.zeros(w.shape)
    dx_db = np.zeros(w.shape)
    for _ in range(steps):
        s = sigmoid(x)
        jac = w * s * (1.0 - s)
        dx_dw = s + jac * dx_dw
        dx_db = 1.0 + jac * dx_db
        x = w * s + b
    s = sigmoid(x)
    outer = 2.0 * (s - target) * s * (1.0 - s)
    return outer * dx_dw, outer * dx_db


def clipped_step(grad, lr: float, threshold: float) -> np.ndarray:
    """Parameter update -lr * g after norm clipping (Pascanu et al. 2013, Algorithm 1):
    g <- threshold * g / ||g|| if ||g|| >= threshold. threshold = inf gives the plain SGD step."""
    g = np.asarray(grad, dtype=np.float64)
    norm = float(np.linalg.norm(g))
    if norm >= threshold:
        g = g * (threshold / norm)
    return -lr * g


def one_unit_bistable_range(w: float) -> tuple[float, float]:
    """The interval of b where x = w sigmoid(x) + b has two stable fixed points (and an unstable one between).

    Its ends are the saddle-node bifurcations, where a fixed point has slope w s'(x) = 1: s(1 - s) = 1/w, so
    s = (1 +- sqrt(1 - 4/w)) / 2 and b = x - w s. Exists only for w > 4 (max s' = 1/4); NaNs otherwise.
    """
    if w <= 4.0:
        return math.nan, math.nan
    root = math.sqrt(1.0 - 4.0 / w)
    ends = []
    for s in ((1.0 - root) / 2.0, (1.0 + root) / 2.0):
        x = math.log(s / (1.0 - s))
        ends.append(x - w * s)
    return min(ends), max(ends)


def _iterate(activation: str, w, drive, a, steps: int) -> np.ndarray:
    """a <- w f(a) + drive, ``steps`` times (broadcast over arrays): the one-unit recurrence in pre-activations."""
    for _ in range(steps):
        a = w * _f_df(activation, a)[0] + drive
    return a


def one_unit_fixed_points(w: float, b_values, x0_values=None, steps: int = 2000) -> dict[str, np.ndarray]:
    """x_inf reached by iterating x_t = w sigmoid(x_{t-1}) + b for ``steps`` steps from each initial state
    (Pascanu et al. 2013, Fig. 3). One entry per (b, x0), as arrays b, x0, x_inf and residual
    (|w s(x_inf) + b - x_inf|, small once converged; large near a bifurcation, where convergence is slow).

    The default initial states, 12 points in [-6, 6], avoid the unstable fixed point x = 0 of b = -w/2.
    """
    x0s = np.linspace(-6.0, 6.0, 12) if x0_values is None else np.asarray(x0_values, dtype=np.float64)
    b_grid, x0_grid = np.meshgrid(np.asarray(b_values, dtype=np.float64), x0s, indexing="ij")
    x = _iterate("sigmoid", w, b_grid, x0_grid, steps)
    residual = np.abs(w * sigmoid(x) + b_grid - x)
    return {"b": b_grid.ravel(), "x0": x0_grid.ravel(), "x_inf": x.ravel(), "residual": residual.ravel()}


def scalar_fixed_point(activation: str, w: float, drive: float = 0.0, steps: int = 20000) -> float:
    """a*, the fixed point of a = w f(a) + drive (h = f(a) solves h = f(w h + u x + b), drive = u x + b) that a
    one-unit RNN with w > 0 reaches from h_0 = 0; drive = 0 is read as the limit drive -> 0+, so that an unstable
    fixed point at 0 (tanh, w > 1) is left as any input leaves it. relu: drive / (1 - w), inf for w >= 1 and a
    positive drive (no fixed point: h grows), drive for a negative one (the unit is off).

    tanh, sigmoid: by iteration (at most ``steps``), which is monotone for w > 0; exact to rounding except at a
    bifurcation (w f'(a*) = 1), where convergence is algebraic."""
    if w <= 0:
        raise ValueError(f"w: must be > 0 (the identity initialisation w = g), got {w!r}")
    if activation == "relu":
        return drive if drive < 0 else drive / (1.0 - w) if w < 1 else math.inf
    a = drive if drive != 0 else 1e-12
    for _ in range(0, steps, 100):
        a, previous = float(_iterate(activation, w, drive, a, 100)), a
        if a == previous:
            break
    return a


def scalar_rate(activation: str, w: float, drive: float = 0.0) -> float:
    """ln |w f'(a*)|: the per-step rate of the one-unit Jacobian product |J_t ... J_{t-n+1}| = |w f'(a*)|^n once
    the unit sits at its fixed point a* (scalar_fixed_point). relu: ln w while the unit is on (drive >= 0,
    read as 0+), -inf when it is off."""
    if activation == "relu":
        return math.log(w) if drive >= 0 else -math.inf
    return math.log(abs(w * float(_f_df(activation, scalar_fixed_point(activation, w, drive))[1])))
