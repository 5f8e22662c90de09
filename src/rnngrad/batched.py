"""Train a group of runs stacked on a leading member axis: one batched matmul per time step for all of them.

At small shapes a training step is mostly per-op overhead, which K runs stacked on a leading axis pay once.
Everything but the update stays per member: each member is a :class:`rnngrad.run.Run` that owns its sampler
generator, rows, logs, evaluation, gradient logging, checkpoints and files, and its parameters and optimizer
buffers are views into the stacked [K, ...] tensors, so its model, state_dict and checkpoints see the stacked
values. The update is stacked, and nothing on its path is per member but each member's draw of its batch indices
from its own generator: one gather of every member's batch, forward, explicit backpropagation through time,
loss, batch metrics, gradient norm, clipping (by norm or by value, per member) and the optimizer step (optim.py's
rules), and one read of the [5, K] numbers that become the members' train rows.

A member's numbers do not depend on the others where its blocks of the stacked tensors start where a lone run's
would, on 64-byte boundaries (the BLAS kernels, it seems, take another code path, with other roundings, for a
misaligned operand). A sweep (H from 2 to 128, B in {5, 8, 16, 20, 32, 64}, outputs and inputs 1 to 10) kept every
member's bits exactly when H is a multiple of 4 (W's H*H floats per member are then a multiple of 16), and for H in
{1, 2, 3} with one output; it broke them, for members after the first only, at every other H it tried (5, 6, 7, 9,
10, 14, 31, 50) and for one unit with several outputs. :func:`stackable` admits only those shapes, and
tests/test_batched.py checks odd batch sizes, inputs and outputs at admitted ones. So a diverging member (NaN/Inf
loss or gradient norm) stops alone, the others continue with the bits they would have without it, and a killed group
resumes bit for bit, members at different steps included. Against the sequential path the numbers agree within
float32 rounding only: batched matmuls and reductions round differently from mm and full reductions (see
tests/test_batched.py for the tolerance). Tested on the CPU only; :func:`can_batch` sends only CPU groups here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from rnngrad import stopping, tasks
from rnngrad.losses import position_losses
from rnngrad.models import ACTIVATIONS
from rnngrad.optim import ADAM_BETAS, EPS
from rnngrad.run import Run, resolve_device
from rnngrad.run_files import completed_status

# What every member of a stacked group shares. Seeds, scales, inits, clipping and the logging, evaluation and
# checkpoint cadences may differ. One activation per group: groups are grid cells' seeds and scales, and mixing
# activations would add an op per activation to every time step for no grouping the pipeline makes.
SHARED_KEYS = (
    "model", "task", "variant", "task_params", "T", "train_data", "test_data", "activation", "hidden", "batch_size",
    "steps", "dtype", "optimizer", "lr", "momentum", "rmsprop_alpha", "rmsprop_eps", "rmsprop_init", "device",
    "error_rule",
)  # fmt: skip
# The shape rule, from `benchmarks/groups.py --sweep` (pure steps, K=12, T=50, adding, Adam, one thread, CPU time,
# batched group vs one run; benchmarks/results/groups.json, measured on a loaded 2-core AMD EPYC, AVX2): stacking
# pays while a member's per-time-step work is small. hidden * batch_size = 64: 4.7x, 256-512: 3.1x, 1024 (the
# defaults): 2.8x, 2048: 1.8-1.9x, 4096: 1.7x, 8192 (H=128, B=64): 1.0x, where full runs at T=100 are slower
# stacked than one after another (1.63x against 1.77x for a sequential group, both against one run a process).
MAX_BATCHED_CELLS = 4096


def stackable(specs: list[dict]) -> bool:
    """Whether the runs can be trained stacked with every member's bits independent of the group: vanilla RNNs
    sharing :data:`SHARED_KEYS`, with a hidden size that keeps each member's blocks 64-byte aligned (a multiple of
    4) or of at most 3 units with one output (small products take a kernel without that dependence; see the
    module's docstring for the sweep)."""
    first = specs[0]
    hidden = first["hidden"]
    aligned = hidden % 4 == 0 or (hidden <= 3 and tasks.n_outputs(first["task"]) == 1)
    if first["model"] != "rnn" or not aligned:
        return False
    return all(spec[key] == first[key] for spec in specs for key in SHARED_KEYS)


# The papers' methods the stacked update does not implement: a group using one trains one run after another.
UNSTACKED_METHODS = ("regularizer", "fresh_data", "until_solved", "train_lengths", "eval_lengths")


def stack_parts(specs: list[dict]) -> list[list[int]]:
    """The specs' indices split into parts that share :data:`SHARED_KEYS`, in order of first appearance: a group
    packing several cells (``groups.pack_cells``) holds runs of different lengths or activations."""
    parts: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        parts.setdefault(json.dumps([spec[key] for key in SHARED_KEYS], sort_keys=True), []).append(index)
    return list(parts.values())


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


class StackedRNN(torch.autograd.Function):
    """:class:`rnngrad.models.VanillaRNN` over a member axis, with the same explicit backward: x [K, T, B, D], W
    [K, H, H], U [K, H, D], b [K, H], V [K, O, H], c [K, O] -> outputs y_t = V h_t + c as [K, O, T, B].

    Every [K, T, B, H] tensor is member-major and contiguous, so that no pass over the states copies them: a
    time step is the strided slice [:, t] (as fast for baddbmm and the elementwise ops as a contiguous one), and
    the sums over steps and sequences are one bmm over each member's [T*B, H] rows. The readout is inside, so
    that dL/dh arrives member-major from one bmm too."""

    @staticmethod
    def forward(ctx, x, W, U, b, V, c, act_name: str):  # noqa: N803 - the lecture's names
        act = ACTIVATIONS[act_name]
        members, steps, batch, _ = x.shape
        flat_x = x.view(members, steps * batch, -1)
        states = torch.baddbmm(b[:, None], flat_x, U.transpose(1, 2)).view(members, steps, batch, -1)  # U x_t + b
        h = states.new_zeros(members, batch, states.shape[-1])
        w_t = W.transpose(1, 2)
        for t in range(steps):  # a_t = W h_{t-1} + U x_t + b, then h_t = f(a_t), both in place
            h = act.f_(states[:, t].baddbmm_(h, w_t))
        flat_states = states.view(members, steps * batch, -1)
        # V H^T rather than H V^T: with one output (adding) the latter is a matrix-vector product, whose slices
        # round differently with the number of members; the former's do not (tests/test_batched.py).
        outputs = torch.baddbmm(c[..., None], V, flat_states.transpose(1, 2))
        ctx.act_name = act_name
        ctx.save_for_backward(flat_x, W, V, states)
        return outputs.view(members, -1, steps, batch)

    @staticmethod
    def backward(ctx, grad_outputs):
        flat_x, W, V, states = ctx.saved_tensors
        act = ACTIVATIONS[ctx.act_name]
        members, steps, batch, hidden = states.shape
        flat_grad = grad_outputs.reshape(members, -1, steps * batch)  # [K, O, T*B]
        flat_states = states.view(members, steps * batch, hidden)
        grad_h = torch.bmm(flat_grad.transpose(1, 2), V).view(states.shape)  # dL/dh_t from the readout
        deltas = act.df(states)  # f'(a_t), turned into delta_t in place below
        for t in reversed(range(steps)):  # delta_t = (dL/dh_t + W^T delta_{t+1}) * f'(a_t)
            delta = deltas[:, t].mul_(grad_h[:, t])
            if t:  # W^T delta_t joins dL/dh_{t-1}, in place
                grad_h[:, t - 1].baddbmm_(delta, W)
        flat_deltas = deltas.view(members, steps * batch, hidden)
        # h_0 = 0: grad_W sums delta_t h_{t-1}^T over steps 2..T, each member's rows in one bmm.
        grad_W = torch.bmm(
            deltas[:, 1:].reshape(members, -1, hidden).transpose(1, 2), states[:, :-1].reshape(members, -1, hidden)
        )
        # bmm is several times slower for grad_U = D^T X than for its transpose X^T D (few inputs per step).
        grad_U = torch.bmm(flat_x.transpose(1, 2), flat_deltas).transpose(1, 2)
        # As H^T dL/dy rather than dL/dy H: with one unit and one output the latter's slices round differently
        # with the number of members (tests/test_batched.py).
        grad_V = torch.bmm(flat_states.transpose(1, 2), flat_grad.transpose(1, 2)).transpose(1, 2)
        return None, grad_W, grad_U, flat_deltas.sum(1), grad_V, flat_grad.sum(2), None


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One number per member ([K]), shaped to broadcast over a stacked [K, ...] tensor."""
    return values.view(-1, *[1] * (like.dim() - 1))


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
        # Per member: the norm threshold (inf: not clipped by norm) and the value bound (inf: not clipped by value),
        # so that members clipping by norm, by value (clip_mode) or not at all share a stack.
        clips = [(run.spec["clip"], run.spec["clip_mode"]) for run in runs]
        self.clips = torch.tensor(
            [clip if clip is not None and mode == "norm" else math.inf for clip, mode in clips], dtype=torch.float64
        )
        self.bounds = [clip if clip is not None and mode == "value" else math.inf for clip, mode in clips]
        self.by_value = any(bound < math.inf for bound in self.bounds)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every member's next training batch as [K, B, ...], gathered in one op: each member draws its sequence
        numbers from its own sampler generator, exactly as alone (:meth:`rnngrad.run.Run.batch_index`), so
        its batches do not depend on the group and a resumed generator continues them. The members share
        their training set (:data:`SHARED_KEYS`)."""
        index = torch.stack([run.batch_index() for run in self.runs])
        return tuple(part[index] for part in self.runs[0].train_set)

    def gradients(self, x, y, mask) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stacked gradients of every member's loss on its batch (x [K, B, T, D], y and mask [K, B, T]), and per
        member the train row's numbers as a [5, K] tensor: loss, gradient norm, metric, share of sequences right,
        and the largest |g_i| (what value clipping compares with its bound)."""
        spec = self.runs[0].spec
        leaves = [param.detach().requires_grad_() for param in self.params]
        with torch.enable_grad():
            outputs = StackedRNN.apply(x.transpose(1, 2).contiguous(), *leaves, spec["activation"])
            # [K, B, T, O], contiguous whatever K: a view's layout would set the order of the sums below.
            outputs = outputs.permute(0, 3, 2, 1).contiguous()
            losses = position_losses(spec["task"], outputs.flatten(0, 1), y.flatten(0, 1)).view(y.shape)
            loss = (losses * mask).sum((1, 2)) / mask.sum((1, 2))  # losses.masked_loss of each member
        grads = torch.autograd.grad(loss.sum(), leaves)
        norms = torch.linalg.vector_norm(torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1), dim=1)
        rule = {} if spec["error_rule"] is None else {"error_rule": spec["error_rule"]}  # as losses.metrics
        metric, right = tasks.get(spec["task"]).metrics(outputs.detach(), y, mask, **rule)
        largest = torch.stack([g.flatten(1).abs().amax(1) for g in grads], 1).amax(1)  # run.grad_largest
        return list(grads), torch.stack([loss.detach(), norms, metric, right, largest])

    @torch.no_grad()
    def update(self, grads: list[torch.Tensor], norms: torch.Tensor) -> None:
        """Clip each member's gradient (clip_mode norm, Pascanu et al.: g <- clip * g / ||g|| where ||g|| > clip;
        value: every element clamped to [-clip, clip], as :func:`rnngrad.run.clip_gradients`), then one step of
        the optimizer for every member, with :class:`rnngrad.optim.Optimizer`'s exact rules. Per-member scalars
        are computed in float64 and rounded once, as Python floats are on the sequential path."""
        norms = norms.double()
        factors = torch.where(norms > self.clips, self.clips / norms, 1.0).float()  # x * 1.0 is x, bit for bit
        grads = [grad.mul_(_per_member(factors, grad)) for grad in grads]
        if self.by_value:  # clamping to +-inf leaves a member clipped by norm, or not at all, bit for bit
            bounds = torch.tensor(self.bounds, dtype=grads[0].dtype)
            grads = [grad.clamp_(-_per_member(bounds, grad), _per_member(bounds, grad)) for grad in grads]
        optimizer = self.runs[0].optimizer  # name, lr, momentum and alpha are shared (SHARED_KEYS)
        for run in self.runs:
            run.optimizer.steps += 1
        if optimizer.name == "adam":
            beta1, beta2 = ADAM_BETAS
            steps = torch.tensor([run.optimizer.steps for run in self.runs], dtype=torch.float64)
            step_size = (-optimizer.lr / (1 - beta1**steps)).float()
            correction = ((1 - beta2**steps) ** 0.5).float()
        for i, (p, grad) in enumerate(zip(self.params, grads, strict=True)):
            if optimizer.name == "sgd":
                p.add_(grad, alpha=-optimizer.lr)
            elif optimizer.name == "momentum":  # buf = mu * buf + g: torch's buf = g at a first step, where buf = 0
                p.add_(self.buffers["first"][i].mul_(optimizer.momentum).add_(grad), alpha=-optimizer.lr)
            elif optimizer.name == "rmsprop":
                sq = self.buffers["second"][i].mul_(optimizer.alpha).addcmul_(grad, grad, value=1 - optimizer.alpha)
                p.addcdiv_(grad, sq.sqrt().add_(optimizer.eps), value=-optimizer.lr)
            else:
                first = self.buffers["first"][i].lerp_(grad, 1 - beta1)
                second = self.buffers["second"][i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                p.addcdiv_(
                    first * _per_member(step_size, p), (second.sqrt() / _per_member(correction, p)).add_(EPS["adam"])
                )


class Group:
    """Runs trained stacked, one update of all of them at a time; a member that diverges or reaches its last step
    is finished (its files written, its status kept) and leaves the stack."""

    def __init__(self, runs: list[Run]):
        self.active = runs
        self.stack = Stack(runs)
        self.statuses: dict[Run, dict] = {}

    def step(self) -> None:
        """The logging and evaluation due, then one update, for every active member: one batch gather, one
        stacked forward and backward, and one read of the [5, K] row numbers (the only host transfer)."""
        for run in self.active:
            run.before_step()
        grads, numbers = self.stack.gradients(*self.stack.draw())
        name = tasks.get(self.active[0].spec["task"]).METRIC_NAME
        finite = [
            run.record_train(
                loss, {"metric": metric, "metric_name": name, "seq_solved_frac": right}, norm, largest=largest
            )
            for run, loss, norm, metric, right, largest in zip(self.active, *numbers.tolist(), strict=True)
        ]
        norms = numbers[1]
        if not all(finite):  # diverged members stop here, their parameters as they were before this update
            for run in (run for run, ok in zip(self.active, finite, strict=True) if not ok):
                run.end_step(False)
            keep = torch.tensor(finite)
            grads, norms = [grad[keep] for grad in grads], norms[keep]
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
    a run trained alone writes (:meth:`rnngrad.run.Run.run`); returns each run's status.json content.

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
            stopping.stop_if_requested(group.active)
            group.step()
        done.update({i: group.statuses[run] for i, run in runs.items()})
    return [done[i] for i in range(len(specs))]
