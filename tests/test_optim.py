"""Our optimizers take exactly torch.optim's steps (same formulas, float64, several steps)."""

import pytest
import torch

from rnngrad.optim import ADAM_BETAS, EPS, Optimizer


def reference(name, params, lr):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=EPS["rmsprop"])
    return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=EPS["adam"])


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam"])
def test_steps_match_torch_optim(name):
    generator = torch.Generator().manual_seed(0)
    start = [
        torch.randn(4, 3, generator=generator, dtype=torch.float64),
        torch.randn(5, generator=generator, dtype=torch.float64),
    ]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    mine, ref = Optimizer(name, ours, lr=0.01, momentum=0.9, rmsprop_alpha=0.9), reference(name, theirs, 0.01)
    for _ in range(6):
        grads = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in start]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        mine.step()
        ref.step()
        for p, q in zip(ours, theirs, strict=True):
            assert torch.allclose(p, q, rtol=1e-13, atol=1e-15)
        assert not all(torch.equal(p, t) for p, t in zip(ours, start, strict=True))


def test_state_round_trip_continues_identically():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    q = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    a, b = Optimizer("adam", [p], lr=0.1), Optimizer("adam", [q], lr=0.1)
    p.grad = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    a.step()
    b.load_state_dict(a.state_dict())
    q.data.copy_(p.data)
    for opt, param in ((a, p), (b, q)):
        param.grad = torch.tensor([0.5, 0.5, -1.0], dtype=torch.float64)
        opt.step()
    assert torch.equal(p, q)


def test_unknown_optimizer_names_the_allowed_values():
    with pytest.raises(ValueError, match="optimizer.*allowed.*adam"):
        Optimizer("adagrad", [], lr=0.1)


def test_arjovsky_s_rmsprop_is_their_code_s_update():
    """rmsprop_init 1e-3, rmsprop_eps 0: Arjovsky et al.'s rms_prop (optimizations.py lines 26-34), by hand:
    v <- 0.9 v + 0.1 g^2 from v = 1e-3, then p <- p - lr g / sqrt(v), no epsilon."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    optimizer = Optimizer("rmsprop", [p], lr=1e-3, rmsprop_alpha=0.9, rmsprop_eps=0.0, rmsprop_init=1e-3)
    v, expected = torch.full((3,), 1e-3, dtype=torch.float64), p.detach().clone()
    for grad in ([0.1, -3.0, 0.0], [0.2, 1.0, -0.01]):
        g = torch.tensor(grad, dtype=torch.float64)
        p.grad = g.clone()
        optimizer.step()
        v = 0.9 * v + 0.1 * g**2
        expected = expected - 1e-3 * g / v.sqrt()
        torch.testing.assert_close(p.detach(), expected, rtol=1e-15, atol=0)
    assert torch.isfinite(p).all()  # a zero gradient (the third weight's first step) gives 0 / sqrt(v > 0), not 0 / 0


def test_rmsprop_denominator_that_can_be_zero_is_refused():
    with pytest.raises(ValueError, match="rmsprop_eps.*not both 0"):
        Optimizer("rmsprop", [], lr=0.1, rmsprop_eps=0.0, rmsprop_init=0.0)
