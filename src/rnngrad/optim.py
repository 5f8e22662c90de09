"""SGD, SGD with momentum, RMSprop and Adam with torch.optim's exact update rules, in a few lines each.

Why not torch.optim: constructing any torch.optim optimizer imports torch._dynamo, about 3 s of CPU in every
training job, more than a default run's whole training. tests/test_optim.py checks these against torch.optim
step by step, so the numbers are torch's.

RMSprop takes two more numbers, for Arjovsky et al. 2016's variant (github.com/amarshah/complex_RNN at 3537fbf,
optimizations.py ``rms_prop``, lines 26-34): v <- alpha v + (1 - alpha) g^2, then p <- p - lr g / (sqrt(v) + eps),
with v started at ``rmsprop_init``. torch's: init 0, eps 1e-8 (the defaults); theirs: init 1e-3, eps 0 (line 27:
``1e-3*np.ones_like``, line 31: ``g / T.sqrt(rms)`` of the updated accumulator, alpha 0.9 on line 28).
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
ADAM_BETAS = (0.9, 0.999)
EPS = {"rmsprop": 1e-8, "adam": 1e-8}


class Optimizer:
    """One of :data:`OPTIMIZERS` over a list of parameters; state is a dict of tensors (for checkpoints)."""

    def __init__(
        self,
        name: str,
        params,
        lr: float,
        momentum: float = 0.9,
        rmsprop_alpha: float = 0.99,
        rmsprop_eps: float = EPS["rmsprop"],
        rmsprop_init: float = 0.0,
    ):
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer: unknown value {name!r}; allowed: {list(OPTIMIZERS)}")
        if not (rmsprop_eps >= 0 and rmsprop_init >= 0 and rmsprop_eps + rmsprop_init > 0):
            raise ValueError(
                f"rmsprop_eps, rmsprop_init: {rmsprop_eps!r}, {rmsprop_init!r}; allowed: both >= 0, not both 0"
            )
        self.name, self.lr, self.momentum, self.alpha = name, lr, momentum, rmsprop_alpha
        self.eps = rmsprop_eps
        self.params = list(params)
        self.steps = 0
        self.buffers: dict[str, list[torch.Tensor]] = {}
        if name == "momentum":
            self.buffers["first"] = [torch.zeros_like(p) for p in self.params]
        if name == "rmsprop":
            self.buffers["second"] = [torch.full_like(p, rmsprop_init) for p in self.params]
        if name == "adam":
            self.buffers = {key: [torch.zeros_like(p) for p in self.params] for key in ("first", "second")}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for i, p in enumerate(self.params):
            grad = p.grad
            if self.name == "sgd":
                p.add_(grad, alpha=-self.lr)
            elif self.name == "momentum":  # torch: buf = mu * buf + g (buf = g at the first step)
                buf = self.buffers["first"][i]
                buf.copy_(grad) if self.steps == 1 else buf.mul_(self.momentum).add_(grad)
                p.add_(buf, alpha=-self.lr)
            elif self.name == "rmsprop":
                sq = self.buffers["second"][i].mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
                p.addcdiv_(grad, sq.sqrt().add_(self.eps), value=-self.lr)
            else:
                beta1, beta2 = ADAM_BETAS
                first = self.buffers["first"][i].lerp_(grad, 1 - beta1)
                second = self.buffers["second"][i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = self.lr / (1 - beta1**self.steps)
                denom = (second.sqrt() / (1 - beta2**self.steps) ** 0.5).add_(EPS["adam"])
                p.addcdiv_(first, denom, value=-step_size)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "buffers": {k: [b.clone() for b in v] for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        for key, tensors in state["buffers"].items():
            for buf, saved in zip(self.buffers[key], tensors, strict=True):
                buf.copy_(saved)
