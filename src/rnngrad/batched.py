"""Train a group of runs stacked on a leading member axis: one batched matmul per time step for all of them.

At small shapes a training step is mostly per-op overhead, which K runs stacked on a leading axis pay once.
Everything but the update stays per member: each member is a :class:`rnngrad.train.Run` that owns its sampler
generator, rows, logs, evaluation, gradient logging, checkpoints and files, and its parameters and optimizer
buffers are views into the stacked [K, ...] tensors, so its model, state_dict and checkpoints see the stacked
values. Only the update is stacked: forward, explicit backpropagation through time, loss, gradient norm, clipping
and the optimizer step (optim.py's rules).

A member's numbers never depend on the others: every op is per element, reduces within a member, or is a batched
matmul whose slices are separate matmuls (so the readout is written as V H^T and the bias gradient is reduced
member-major; tests/test_batched.py checks it, and a sweep over H 1..128, B 8..64, T 5..50 and both tasks found
only the copy task at H=1 failing, which :func:`stackable` excludes). So a diverging member (NaN/Inf loss or
gradient norm) stops alone, the others continue with the bits they would have without it, and a killed group
resumes bit for bit, members at different steps included. Against the sequential path the numbers agree within
float32 rounding only: batched matmuls and reductions round differently from mm and full reductions (see
tests/test_batched.py for the tolerance). Tested on the CPU only; :func:`can_batch` sends only CPU groups here.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rnngrad import tasks
from rnngrad.losses import metrics, position_losses
from rnngrad.models import ACTIVATIONS
from rnngrad.optim import ADAM_BETAS, EPS
from rnngrad.train import Run, completed_status, resolve_device

# What every member of a stacked group shares. Seeds, scales, inits, clipping and the logging, evaluation and
# checkpoint cadences may differ. One activation per group: groups are grid cells' seeds and scales, and mixing
# activations would add an op per activation to every time step for no grouping the pipeline makes.
SHARED_KEYS = (
    "model", "task", "variant", "task_params", "T", "train_data", "test_data", "activation", "hidden", "batch_size",
    "steps", "dtype", "optimizer", "lr", "momentum", "rmsprop_alpha", "device",
)  # fmt: skip
# The shape rule, from benchmarks/groups.py and a sweep of its pure-step timing (K=12, T=50, adding, Adam, one
# thread, CPU time, batched vs one run at a time): stacking pays while a member's step is mostly per-op overhead,
# i.e. while its per-time-step matmul [B, H] x [H, H] is small. hidden * batch_size = 512: 1.8x, 1024 (the
# defaults): 1.2-1.3x, 2048: 0.7x (H=64, B=32) and 1.0x (H=32, B=64), 4096: 0.7-0.8x, 8192 (H=128, B=64, T=100):
# 0.5x. (Wall time on the loaded 2-core machine gave 2.3x at 1024; CPU time is the steadier measure.)
MAX_BATCHED_CELLS = 1024


def stackable(specs: list[dict]) -> bool:
    """Whether the runs can be trained stacked at all: vanilla RNNs sharing :data:`SHARED_KEYS`, and not one hidden
    unit with several outputs (as the copy task has: its input and readout products are matrix-vector products,
    whose slices round differently with the number of members, so a member's bits would depend on the group)."""
    first = specs[0]
    if first["model"] != "rnn" or (first["hidden"] == 1 and tasks.n_outputs(first["task"]) > 1):
        return False
    return all(spec[key] == first[key] for spec in specs for key in SHARED_KEYS)


# The papers' methods the stacked update does not implement: a group using one trains one run after another.
UNSTACKED_METHODS = ("regularizer", "fresh_data", "until_solved", "train_lengths", "eval_lengths")


def unstacked_methods(specs: list[dict]) -> list[str]:
    """The papers' methods among these specs that only the sequential path implements."""
    return [key for key in UNSTACKED_METHODS if any(spec[key] for spec in specs)]


def can_batch(specs: list[dict]) -> bool:
    """Whether the batched path should train these runs: stackable, on the CPU, small enough that stacking
    is faster than one run after another (:data:`MAX_BATCHED_CELLS`), and using none of :data:`UNSTACKED_METHODS`."""
    if len(specs) < 2 or not stackable(specs) or unstacked_methods(specs):
        return False
    first = specs[0]
    on_cpu = resolve_device(first["device"]).type == "cpu"
    return on_cpu and first["hidden"] * first["batch_size"] <= MAX_BATCHED_CELLS


class StackedRecurrence(torch.autograd.Function):
    """:class:`rnngrad.models.Recurrence` over a member axis, with the same explicit backward: x [K, T, B, D],
    W [K, H, H], U [K, H, D], b [K, H] -> h_1..h_T as [K, T, B, H]. The states are kept step-major, [T, K, B, H],
    so that each time step is one contiguous baddbmm; the matmuls over all steps are member-major (batched over
    K, not over T*K small ones)."""

    @staticmethod
    def forward(ctx, x, W, U, b, act_name: str):  # noqa: N803 - the lecture's names
        act = ACTIVATIONS[act_name]
        members, steps, batch, _ = x.shape
        driven = torch.baddbmm(b[:, None], x.view(members, steps * batch, -1), U.transpose(1, 2))  # U x_t + b
        states = driven.view(members, steps, batch, -1).transpose(0, 1).contiguous()
        h = states.new_zeros(states.shape[1:])
        w_t = W.transpose(1, 2)
        for a in states.unbind(0):  # a_t = W h_{t-1} + U x_t + b, then h_t = f(a_t), both in place
            h = act.f_(a.baddbmm_(h, w_t))
        ctx.act_name = act_name
        ctx.save_for_backward(x, W, states)
        return states.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_states):
        x, W, states = ctx.saved_tensors
        act = ACTIVATIONS[ctx.act_name]
        deltas = act.df(states)  # f'(a_t), turned into delta_t in place below
        carry = torch.zeros_like(states[0])  # W^T delta_{t+1}
        grads = grad_states.transpose(0, 1).contiguous().unbind(0)  # step-major: adding strided slices is slow
        for grad, delta in zip(reversed(grads), reversed(deltas.unbind(0)), strict=True):
            carry = torch.bmm(delta.mul_(grad + carry), W)  # delta_t = (dL/dh_t + W^T delta_{t+1}) * f'(a_t)
        # Member-major [K, T*B, H] for the sums over steps and sequences: einsum is several times slower, and
        # bmm is several times slower for grad_U = D^T X than for its transpose X^T D (few inputs per step).
        flat_deltas = _member_major(deltas)
        grad_W = torch.bmm(flat_deltas[:, deltas.shape[2] :].transpose(1, 2), _member_major(states[:-1]))  # h_0 = 0
        grad_U = torch.bmm(x.view(x.shape[0], -1, x.shape[-1]).transpose(1, 2), flat_deltas).transpose(1, 2)
        return None, grad_W, grad_U, flat_deltas.sum(1), None


def _member_major(steps: torch.Tensor) -> torch.Tensor:
    """[T, K, B, F] -> [K, T*B, F], each member's rows in (t, b) order."""
    return steps.transpose(0, 1).reshape(steps.shape[1], -1, steps.shape[-1])


def _per_member(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """One number per member, shaped to broadcast over a stacked [K, ...] tensor."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *[1] * (like.dim() - 1))


class Stack:
    """The members' parameters and optimizer buffers as [K, ...] tensors; the members' own tensors become views
    into them. Built again whenever a member leaves (a fresh stack: a diverged member keeps its last values)."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        models = [run.model for run in runs]
        self.names = [name for name, _ in models[0].named_parameters()]  # the optimizer's parameter order
        self.params = [torch.stack([getattr(model, name).detach() for model in models]) for name in self.names]
        for k, model in enumerate(models):
            for name, stacked in zip(self.names, self.params, strict=True):
                getattr(model, name).data = stacked[k]
        self.buffers = {
            key: [torch.stack([run.optimizer.buffers[key][i] for run in runs]) for i in range(len(self.names))]
            for key in runs[0].optimizer.buffers
        }
        for k, run in enumerate(runs):
            for key, stacked in self.buffers.items():
                run.optimizer.buffers[key] = [buffer[k] for buffer in stacked]

    def gradients(self, batches: list[tuple]) -> tuple[list[torch.Tensor], list[float], list[float], list[dict]]:
        """Stacked gradients of every member's loss on its batch, and per member the loss, the gradient norm and
        the batch metrics (the train row's numbers)."""
        spec = self.runs[0].spec
        x, y, mask = (torch.stack([part.transpose(0, 1) for part in parts]) for parts in zip(*batches, strict=True))
        leaves = [param.detach().requires_grad_() for param in self.params]
        W, U, b, V, c = leaves  # noqa: N806 - the lecture's names
        with torch.enable_grad():  # everything [K, T, B, ...]
            states = StackedRecurrence.apply(x, W, U, b, spec["activation"])
            members, steps, batch, hidden = states.shape
            # V H^T rather than H V^T: with one output (adding) the latter is a matrix-vector product, whose slices
            # round differently with the number of members; the former's do not (tests/test_batched.py).
            outputs = torch.baddbmm(c[..., None], V, states.reshape(members, -1, hidden).transpose(1, 2))
            outputs = outputs.transpose(1, 2).view(members, steps, batch, -1)
            losses = position_losses(spec["task"], outputs.flatten(0, 1), y.flatten(0, 1)).view(y.shape)
            loss = (losses * mask).sum((1, 2)) / mask.sum((1, 2))  # losses.masked_loss of each member
        grads = torch.autograd.grad(loss.sum(), leaves)
        norms = torch.linalg.vector_norm(torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1), dim=1)
        losses_, norms_ = torch.stack([loss.detach(), norms]).tolist()
        outputs, y, mask = outputs.detach().transpose(1, 2), y.transpose(1, 2), mask.transpose(1, 2)  # [K, B, T, ...]
        batch_metrics = [metrics(spec["task"], outputs[k], y[k], mask[k]) for k in range(members)]
        return list(grads), losses_, norms_, batch_metrics

    @torch.no_grad()
    def update(self, grads: list[torch.Tensor], norms: list[float]) -> None:
        """Clip each member's gradient (Pascanu et al.: g <- clip * g / ||g|| where ||g|| > clip), then one step
        of the optimizer for every member, with :class:`rnngrad.optim.Optimizer`'s exact rules."""
        clips = [run.spec["clip"] for run in self.runs]
        if any(clip is not None and norm > clip for clip, norm in zip(clips, norms, strict=True)):
            factors = [
                clip / norm if clip is not None and norm > clip else 1.0
                for clip, norm in zip(clips, norms, strict=True)
            ]
            grads = [grad.mul_(_per_member(factors, grad)) for grad in grads]
        optimizer = self.runs[0].optimizer  # name, lr, momentum and alpha are shared (SHARED_KEYS)
        for run in self.runs:
            run.optimizer.steps += 1
        steps = [run.optimizer.steps for run in self.runs]
        for i, (p, grad) in enumerate(zip(self.params, grads, strict=True)):
            if optimizer.name == "sgd":
                p.add_(grad, alpha=-optimizer.lr)
            elif optimizer.name == "momentum":  # buf = mu * buf + g: torch's buf = g at a first step, where buf = 0
                p.add_(self.buffers["first"][i].mul_(optimizer.momentum).add_(grad), alpha=-optimizer.lr)
            elif optimizer.name == "rmsprop":
                sq = self.buffers["second"][i].mul_(optimizer.alpha).addcmul_(grad, grad, value=1 - optimizer.alpha)
                p.addcdiv_(grad, sq.sqrt().add_(EPS["rmsprop"]), value=-optimizer.lr)
            else:
                beta1, beta2 = ADAM_BETAS
                first = self.buffers["first"][i].lerp_(grad, 1 - beta1)
                second = self.buffers["second"][i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = _per_member([-optimizer.lr / (1 - beta1**step) for step in steps], p)
                correction = _per_member([(1 - beta2**step) ** 0.5 for step in steps], p)
                p.addcdiv_(first * step_size, (second.sqrt() / correction).add_(EPS["adam"]))


class Group:
    """Runs trained stacked, one update of all of them at a time; a member that diverges or reaches its last step
    is finished (its files written, its status kept) and leaves the stack."""

    def __init__(self, runs: list[Run]):
        self.active = runs
        self.stack = Stack(runs)
        self.statuses: dict[Run, dict] = {}

    def step(self) -> None:
        """The logging and evaluation due, then one update, for every active member."""
        for run in self.active:
            run.before_step()
        grads, losses_, norms, batch_metrics = self.stack.gradients([run.draw_batch() for run in self.active])
        finite = [run.record_train(*row) for run, *row in zip(self.active, losses_, batch_metrics, norms, strict=True)]
        if not all(finite):  # diverged members stop here, their parameters as they were before this update
            for run in (run for run, ok in zip(self.active, finite, strict=True) if not ok):
                run.end_step(False)
            grads = [grad[torch.tensor(finite)] for grad in grads]
            norms = [norm for norm, ok in zip(norms, finite, strict=True) if ok]
            self._leave([run for run, ok in zip(self.active, finite, strict=True) if ok])
        if self.active:
            self.stack.update(grads, norms)
            for run in self.active:
                run.end_step(True)
            self._leave([run for run in self.active if run.step < run.spec["steps"]])

    def _leave(self, staying: list[Run]) -> None:
        """Finish the members not staying and stack the others afresh."""
        if len(staying) == len(self.active):
            return
        for run in self.active:
            if run not in staying:
                self.statuses[run] = run.finish()
        self.active = staying
        if staying:
            self.stack = Stack(staying)


def train_batched(specs: list[dict], out_dirs: list[str | Path]) -> list[dict]:
    """Train (or resume) the runs stacked and write each run's files into its out_dir, exactly the set
    ``train.train`` writes; returns each run's status.json content.

    A member that already finished with the same spec and training code is skipped (its status is returned as it
    is); the others resume from their own checkpoints, possibly at different steps."""
    if not stackable(specs):
        raise ValueError(f"train_batched: the specs differ in a key stacked runs must share, one of {SHARED_KEYS}")
    done = {i: completed_status(spec, out_dir) for i, (spec, out_dir) in enumerate(zip(specs, out_dirs, strict=True))}
    runs = {i: Run(specs[i], out_dirs[i]) for i, status in done.items() if status is None}
    for run in runs.values():
        os.makedirs(run.out_dir, exist_ok=True)
        run.start()
    if runs:
        group = Group(list(runs.values()))
        while group.active:
            group.step()
        done.update({i: group.statuses[run] for i, run in runs.items()})
    return [done[i] for i in range(len(specs))]
