"""The generic decomposition (autograd with per-step weight copies) against the explicit recursion and autograd."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import ROOT, make_batch, make_model

from rnngrad import decompose, gradients, tasks
from rnngrad.models import build_model


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize(("task", "hidden", "steps", "scale"), [("copy", 5, 9, 1.4), ("adding", 7, 14, 0.8)])
def test_vanilla_generic_tables_equal_the_explicit_recursion(activation, task, hidden, steps, scale):
    model = make_model(task, hidden, activation, scale=scale, seed=3)
    batch = make_batch(task, batch=4, steps=steps, seed=4)
    args = (model, batch, task, ["last", 3], 3)
    explicit, generic = gradients.log_step(*args), decompose.log_step(*args)
    assert set(explicit) == set(generic) == {"gradients", "jacobians", "products", "spectrum"}
    for name, frame in explicit.items():
        other = generic[name][list(frame.columns)]
        assert list(other.columns) == list(frame.columns) and len(other) == len(frame), name
        for column in frame.columns:
            if pd.api.types.is_numeric_dtype(frame[column]):
                expected = frame[column].to_numpy(dtype=float)
                assert other[column].to_numpy(dtype=float) == pytest.approx(expected, rel=1e-12, abs=1e-300), column
            else:
                assert list(other[column]) == list(frame[column]), column


def cell_model(model: str, task: str, hidden: int, seed: int, **kwargs):
    return build_model(model, tasks.n_inputs(task), hidden, tasks.n_outputs(task), seed=seed, **kwargs).double()


def test_lru_eigenvalues_start_on_the_ring_and_never_leave_the_unit_disc():
    net = cell_model("lru", "adding", 64, seed=0)
    with torch.no_grad():
        re, im = net.eigenvalues()
    modulus = torch.sqrt(re**2 + im**2)
    assert float(modulus.min()) >= net.R_MIN - 1e-6 and float(modulus.max()) <= net.R_MAX + 1e-6
    with torch.no_grad():
        net.nu_log.fill_(-30.0)  # any value of the parameter: |lambda| = exp(-exp(nu)) < 1
        assert float(torch.linalg.matrix_norm(net.recurrent_matrix(), ord=2)) <= 1.0


def test_lstm_forget_bias_sets_the_forget_gates_total_bias():
    net = cell_model("lstm", "adding", 4, seed=0, forget_bias=1.0)
    total = net.lstm.bias_ih_l0 + net.lstm.bias_hh_l0
    assert torch.equal(total[4:8], torch.ones(4, dtype=torch.float64))
    default = cell_model("lstm", "adding", 4, seed=0)
    assert not torch.equal((default.lstm.bias_ih_l0 + default.lstm.bias_hh_l0)[4:8], total[4:8])


class MinimalCell(torch.nn.Module):
    """A user's cell as docs/cells.md defines it: h_t = tanh(W h_{t-1} + U x_t), tensor state."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.hidden_size = hidden
        self.W = torch.nn.Parameter(torch.randn(hidden, hidden, generator=generator) / hidden**0.5)
        self.U = torch.nn.Parameter(torch.randn(hidden, n_in, generator=generator))

    def forward(self, x_t, h):
        return torch.tanh(h @ self.W.T + x_t @ self.U.T)


def test_analyse_a_user_cell_against_autograd_and_the_explicit_jacobians():
    """The entry point on a hand-written tanh cell: dL_t/dh_k equals autograd's through the loop (each h_k
    retaining its gradient), the W contributions add up to dL_t/dW, and the Jacobian norms equal the explicit
    ||diag(f'(a_j)) W||_2 of the vanilla RNN with the same W and U (b = 0)."""
    cell = MinimalCell(2, 5).double()
    x = make_batch("adding", batch=3, steps=10, seed=1)[0]
    target = torch.randn(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(t, h):
        return ((h - target) ** 2).sum() / 3

    tables = decompose.analyse(cell, x, loss, targets=["last", 4], jacobian_samples=3)
    grads = tables["gradients"]
    assert set(grads.weight) == {"W", "U"} and set(grads.t) == {4, 10}
    for t in (4, 10):
        h, states = x.new_zeros(3, 5), []
        for k in range(t):
            h = cell(x[:, k], h)
            h.retain_grad()
            states.append(h)
        loss(t, h).backward()
        expected = torch.stack([s.grad.norm(dim=1).mean() for s in states])
        rows = grads.query("t == @t and weight == 'W'")
        assert rows.dLdh_norm.to_numpy() == pytest.approx(expected.numpy(), rel=1e-12)
        terms, _ = decompose.contribution_terms(decompose.CellModel(cell, 5), x, loss, [t])
        assert torch.allclose(terms[0]["cell.W"].sum(0), cell.W.grad, rtol=1e-12, atol=1e-15)
        cell.zero_grad()
    rnn = make_model("adding", 5, "tanh", scale=1.0, seed=0)
    with torch.no_grad():
        rnn.W.copy_(cell.W), rnn.U.copy_(cell.U), rnn.b.zero_()
        explicit = gradients.jacobian_norms(rnn.W, rnn.act.df(rnn.states(x)))
    assert tables["jacobians"].jac_norm.to_numpy() == pytest.approx(explicit.mean(0).numpy(), rel=1e-12)


def test_the_docs_example_for_a_users_cell_runs_and_draws(tmp_path, monkeypatch):
    """docs/cells.md's own-cell example (the README points to it), run as written: it writes the figure it draws."""
    import matplotlib

    matplotlib.use("Agg")
    page = (ROOT / "docs" / "cells.md").read_text()
    section = page[page.index("# Any cell, your own included") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/cells.md", "exec"), {"__name__": "docs_example"})  # noqa: S102 - the page's example
    assert (tmp_path / "my_cell_contributions.png").stat().st_size > 10_000
