"""Train a group of runs stacked on a leading member axis: one batched matmul per time step for all of them.

At small shapes a training step is mostly per-op overhead, which K runs stacked on a leading axis pay once.
Everything but the update stays per member: each member is a :class:`rnngrad.run.Run` that owns its sampler
generator (or its fresh-data stream), rows, logs, evaluation (extra lengths and a mixed test set included), gradient
logging, checkpoints and files, and its parameters and optimizer buffers are views into the stacked [K, ...]
tensors, so its model, state_dict and checkpoints see the stacked values. The update is stacked: the members'
batches (gathered in one op, or each member's fresh minibatch at its own step, stacked), forward, explicit
backpropagation through time, loss, batch metrics, Pascanu et al.'s regulariser (eq. 10, each member its own
alpha, 0 allowed, added before clipping: :func:`stacked_omega`), gradient norm, clipping (by norm or by value, per
member) and the optimizer step (optim.py's rules), and one read of the [6, K] numbers that become the members' train
rows. A member that trains until solved and meets its criterion leaves before that step's update, as alone.
With mixed training lengths (``train_lengths``, Pascanu et al. 2013 section 4.1.1) each member draws its own T at
every step and its batch is right-padded to the longest trainable T (:func:`rnngrad.tasks.pad`): its padded steps
carry no loss, and their states are zeroed before the readout (:func:`stacked_forward`), so they add exact zeros
to every sum and a member's numbers are those of its own length. The papers' methods
(:data:`rnngrad.contract.STACK_METHODS`) stack for runs whose spec carries ``stack_methods`` (``groups.stack_methods``,
on by default).

A member's numbers do not depend on the others because every member's block of every stacked tensor (parameters,
optimizer buffers, inputs, states, deltas, outputs, the gradients and the regulariser's operands) starts on a
64-byte boundary, as a lone run's tensor does, with a lone run's layout inside (:func:`member_blocks`: a [K, n]
buffer, n padded to 64 bytes, viewed as [K, ...]; a matmul writes into such blocks through ``out=``). MKL's
kernels round a misaligned operand or result differently, so a plain stack (member k's block at k times its size)
broke the bits of members after the first wherever a block's size is no multiple of 16 floats: H = 5, 6, 7, 9, 10,
14, 31, 50 in an earlier sweep, and H = 5 and 7 at every batch size in a rerun of that code (T = 12), and a [K, M, P]
result written contiguously put members 2 and 3 off at M, P = 5, 7. The sweep that chose the padding (Stack.gradients
of each member of a group of K = 3 and 15 against the same member alone, bit for bit: loss, gradient norm, metric,
share right, largest |g_i|, Omega and every gradient, tanh, regulariser alphas 0, 2 and 4 across members) kept every
member's bits at every H from 2 to 64, B in {1, 5, 13, 20, 31}, on adding (1 output), temporal order (6 inputs, 4
outputs) and copy (10, 10) at T = 12, and at H in {1, 5, 7, 50, 100, 128} at T = 50. One number a member (a [K, 1, 1]
W or readout of one unit) stays a contiguous [K] stack: padded, bmm takes a per-member path there whose dot products
round differently from the K = 1 case, while unpadded it kept its bits. One unit with several outputs still broke (H
= 1, B = 20, temporal order and copy), so :func:`stackable` admits every hidden size but that one. tests/test_batched.py
checks misaligned sizes, odd batches, every method and a group of 15. So a diverging or solved member stops alone,
the others continue with the bits they would have without it, and a killed group resumes bit for bit, members at
different steps included. Against the sequential path the numbers agree within float32 rounding only: batched
matmuls and reductions round differently from mm and full reductions (see tests/test_batched.py for the tolerance).
Tested on the CPU only (MKL, AVX2); :func:`can_batch` sends only CPU groups here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from rnngrad import regularizer, stopping, tasks
from rnngrad.contract import STACK_METHODS
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
    "error_rule", "train_lengths",
)  # fmt: skip
# The shape rule, from `benchmarks/groups.py --sweep` (pure steps, K=12, T=50, adding, Adam, one thread, CPU time,
# batched group vs one run; benchmarks/results/groups.json, measured on a loaded 2-core AMD EPYC, AVX2): stacking
# pays while a member's per-time-step work is small. hidden * batch_size = 64: 4.7x, 256-512: 3.1x, 1024 (the
# defaults): 2.8x, 2048: 1.8-1.9x, 4096: 1.7x, 8192 (H=128, B=64): 1.0x, where full runs at T=100 are slower
# stacked than one after another (1.63x against 1.77x for a sequential group, both against one run a process).
MAX_BATCHED_CELLS = 4096


def stackable(specs: list[dict]) -> bool:
    """Whether the runs can be trained stacked with every member's bits independent of the group: vanilla RNNs
    sharing :data:`SHARED_KEYS`, of any hidden size but one unit with several outputs (the one shape the
    module docstring's sweep found that a member's bits still depend on the group)."""
    first = specs[0]
    if first["model"] != "rnn" or (first["hidden"] == 1 and tasks.n_outputs(first["task"]) > 1):
        return False
    return all(spec[key] == first[key] for spec in specs for key in SHARED_KEYS)


# STACK_METHODS (each member its own alpha, fresh batches, stop when solved, extra evaluation lengths, mixed training
# lengths) stack only for runs whose spec carries stack_methods (groups.stack_methods, rnngrad.groups): the stacked
# path rounds differently from the sequential one, and a config that turns it off keeps the sequential bits.
# test_lengths (the test set's lengths) is evaluation only, through each member's own Run, and stacks either way.


def stack_parts(specs: list[dict]) -> list[list[int]]:
    """The specs' indices split into parts that share :data:`SHARED_KEYS`, in order of first appearance: a group
    packing several cells (``groups.pack_cells``) holds runs of different lengths or activations."""
    parts: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        parts.setdefault(json.dumps([spec[key] for key in SHARED_KEYS], sort_keys=True), []).append(index)
    return list(parts.values())


def unstacked_methods(specs: list[dict]) -> list[str]:
    """The papers' methods (:data:`rnngrad.contract.STACK_METHODS`) used by a spec without ``stack_methods``
    (``groups.stack_methods: false``): those train one run after another."""
    return [key for key in STACK_METHODS if any(spec[key] and not spec.get("stack_methods") for spec in specs)]


def can_batch(specs: list[dict]) -> bool:
    """Whether the batched path should train these runs: stackable, on the CPU, small enough that stacking
    is faster than one run after another (:data:`MAX_BATCHED_CELLS`), and no method a spec keeps sequential
    (:func:`unstacked_methods`)."""
    if len(specs) < 2 or not stackable(specs) or unstacked_methods(specs):
        return False
    first = specs[0]
    on_cpu = resolve_device(first["device"]).type == "cpu"
    return on_cpu and first["hidden"] * first["batch_size"] <= MAX_BATCHED_CELLS


ALIGNMENT = 64  # bytes: where PyTorch's CPU allocator starts every tensor, a lone run's included


def member_blocks(members: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised [K, *shape] tensor (``like``'s dtype and device) whose every member's block starts on a
    64-byte boundary, as a lone run's tensor does, and is laid out inside as a lone run's (contiguous): a view of
    the first prod(shape) elements of each row of a [K, n] buffer, n rounded up to a multiple of 64 bytes. BLAS
    kernels round a misaligned operand differently (the module's docstring); so do views with padded member
    strides never reach one."""
    size = math.prod(shape)
    per_line = ALIGNMENT // like.element_size()
    if size == 1:  # one number a member: a contiguous [K] stack keeps its bits (a padded one does not; the sweep)
        return like.new_empty(members, *shape)
    buffer = like.new_empty(members, -(-size // per_line) * per_line)
    return buffer[:, :size].view(members, *shape)


def aligned(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of a [K, ...] tensor in :func:`member_blocks`."""
    return member_blocks(tensor.shape[0], tuple(tensor.shape[1:]), tensor).copy_(tensor)


def stacked_forward(x, W, U, b, V, c, act, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: N803
    """:class:`rnngrad.models.VanillaRNN` over a member axis: x [K, T, B, D], W [K, H, H], U [K, H, D], b [K, H],
    V [K, O, H], c [K, O] -> (outputs y_t = V h_t + c as [K, O, T*B], states h_t as [K, T, B, H]). ``lengths``
    (each member's steps, where batches are right-padded): a member's states past its own length are zeroed before
    the readout, so that its padding, which carries no loss, adds exact zeros downstream and cannot overflow.

    Every [K, ...] tensor is in :func:`member_blocks` (x, and the parameters, must be too): a time step is the
    strided slice [:, t] (as fast for baddbmm and the elementwise ops as a contiguous one), and the sums over steps
    and sequences are one bmm over each member's [T*B, H] rows. The readout is here too, so that dL/dh arrives
    member-major from one bmm."""
    members, steps, batch, _ = x.shape
    hidden = W.shape[1]
    flat_x = x.view(members, steps * batch, -1)
    states = member_blocks(members, (steps, batch, hidden), x)
    flat_states = states.view(members, steps * batch, hidden)
    torch.baddbmm(b[:, None], flat_x, U.transpose(1, 2), out=flat_states)  # U x_t + b
    h = member_blocks(members, (batch, hidden), x).zero_()
    w_t = W.transpose(1, 2)
    for t in range(steps):  # a_t = W h_{t-1} + U x_t + b, then h_t = f(a_t), both in place
        h = act.f_(states[:, t].baddbmm_(h, w_t))
    for k, length in enumerate(lengths or []):
        states[k, length:].zero_()
    # V H^T rather than H V^T: with one output (adding) the latter is a matrix-vector product, whose slices
    # round differently with the number of members; the former's do not (tests/test_batched.py).
    outputs = member_blocks(members, (V.shape[1], steps * batch), x)
    torch.baddbmm(c[..., None], V, flat_states.transpose(1, 2), out=outputs)
    return outputs, states


def stacked_backward(grad_outputs, x, W, V, states, act) -> tuple[list[torch.Tensor], torch.Tensor]:  # noqa: N803
    """The explicit backward of :func:`stacked_forward` from dL/dy [K, O, T*B] (in :func:`member_blocks`):
    the gradients of W, U, b, V, c and the deltas dL/da_t [K, T, B, H] (which the regulariser reads)."""
    members, steps, batch, hidden = states.shape
    flat_x = x.view(members, steps * batch, -1)
    flat_states = states.view(members, steps * batch, hidden)
    grad_h = member_blocks(members, (steps, batch, hidden), states)
    torch.bmm(grad_outputs.transpose(1, 2), V, out=grad_h.view(members, -1, hidden))  # dL/dh_t from the readout
    deltas = member_blocks(members, (steps, batch, hidden), states)
    for t in reversed(range(steps)):  # delta_t = (dL/dh_t + W^T delta_{t+1}) * f'(a_t), a step's slice in cache
        delta = torch.mul(act.df(states[:, t]), grad_h[:, t], out=deltas[:, t])
        if t:  # W^T delta_t joins dL/dh_{t-1}, in place
            grad_h[:, t - 1].baddbmm_(delta, W)
    flat_deltas = deltas.view(members, steps * batch, hidden)
    # h_0 = 0: grad_W sums delta_t h_{t-1}^T over steps 2..T, each member's rows in one bmm.
    grad_W = member_blocks(members, (hidden, hidden), states)
    rows = (members, -1, hidden)
    torch.bmm(deltas[:, 1:].reshape(rows).transpose(1, 2), states[:, :-1].reshape(rows), out=grad_W)
    # bmm is several times slower for grad_U = D^T X than for its transpose X^T D (few inputs per step).
    grad_U = member_blocks(members, (flat_x.shape[2], hidden), states)
    torch.bmm(flat_x.transpose(1, 2), flat_deltas, out=grad_U)
    # As H^T dL/dy rather than dL/dy H: with one unit and one output the latter's slices round differently
    # with the number of members (tests/test_batched.py).
    grad_V = member_blocks(members, (hidden, grad_outputs.shape[1]), states)
    torch.bmm(flat_states.transpose(1, 2), grad_outputs.transpose(1, 2), out=grad_V)
    grads = [grad_W, grad_U.transpose(1, 2), flat_deltas.sum(1), grad_V.transpose(1, 2), grad_outputs.sum(2)]
    return grads, deltas


def stacked_omega(W, states, deltas, act) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: N803
    """:func:`rnngrad.regularizer.omega` over the member axis: (Omega [K], dOmega/dW [K, H, H]) of every member,
    from W [K, H, H], its states h_t and deltas dE/da_t [K, T, B, H] (:func:`stacked_backward`'s), each member's
    numbers from its own blocks alone (eq. 10, squared norms; see that module for the formulas and the dropped
    steps)."""
    members, steps, batch, hidden = states.shape
    slopes = act.df(states[:, :-1])  # f'(a_k), k = 1..T-1
    upstream = deltas[:, 1:]  # dE/dx_{k+1}
    back = member_blocks(members, (steps - 1, batch, hidden), states)  # n = (W^T delta_{k+1}) * f'(a_k)
    torch.bmm(upstream.reshape(members, -1, hidden), W, out=back.view(members, -1, hidden))  # rows delta^T W
    back.mul_(slopes)
    up_sq = upstream.square().sum(-1)  # [K, T-1, B]
    kept = up_sq >= regularizer.BOUND
    n_kept = kept.sum((1, 2)).clamp_(min=1).to(states.dtype)[:, None, None]  # none kept: Omega and its gradient 0
    up_sq = torch.where(kept, up_sq, 1.0)
    excess = torch.where(kept, back.square().sum(-1) / up_sq - 1.0, 0.0)  # r - 1, 0 where dropped
    value = excess.square().sum((1, 2)) / n_kept[:, 0, 0]
    coef = 4.0 * excess / (up_sq * n_kept)
    left = member_blocks(members, (steps - 1, batch, hidden), states)
    torch.mul(upstream, coef[..., None], out=left)
    right = member_blocks(members, (steps - 1, batch, hidden), states)
    torch.mul(back, slopes, out=right)
    grad = member_blocks(members, (hidden, hidden), states)
    torch.bmm(left.view(members, -1, hidden).transpose(1, 2), right.view(members, -1, hidden), out=grad)
    return value, grad


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One number per member ([K]), shaped to broadcast over a stacked [K, ...] tensor."""
    return values.view(-1, *[1] * (like.dim() - 1))


def _stacked(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The members' tensors stacked on a leading axis, in :func:`member_blocks`."""
    stacked = member_blocks(len(tensors), tuple(tensors[0].shape), tensors[0])
    for k, tensor in enumerate(tensors):
        stacked[k].copy_(tensor)
    return stacked


class Stack:
    """The members' parameters and optimizer buffers as [K, ...] tensors (:func:`member_blocks`); the members'
    own tensors become views into them. Built again whenever a member leaves (a fresh stack: a member that left
    keeps its last values)."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        models = [run.model for run in runs]
        self.names = [name for name, _ in models[0].named_parameters()]  # the optimizer's parameter order
        self.params = [_stacked([getattr(model, name).detach() for model in models]) for name in self.names]
        for k, model in enumerate(models):
            for name, stacked in zip(self.names, self.params, strict=True):
                getattr(model, name).data = stacked[k]
        self.buffers = {
            key: [_stacked([run.optimizer.buffers[key][i] for run in runs]) for i in range(len(self.names))]
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
        # Per member: the regulariser's alpha (Pascanu et al. 2013, eq. 10); 0 leaves a member's gradient alone.
        self.alphas = [float(run.spec.get("regularizer") or 0) for run in runs]

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every member's next training batch as [K, B, ...]. From a stored training set, gathered in one op: each
        member draws its sequence numbers from its own sampler generator, exactly as alone
        (:meth:`rnngrad.run.Run.batch_index`), so its batches do not depend on the group and a resumed generator
        continues them (the members share their training set, :data:`SHARED_KEYS`). With fresh data, each
        member's own minibatch at its own step (:func:`rnngrad.run.fresh_batch`), stacked."""
        if self.runs[0].train_set is None:
            batches = [run.draw_batch(padded=True) for run in self.runs]
            return tuple(torch.stack(parts) for parts in zip(*batches, strict=True))
        index = torch.stack([run.batch_index() for run in self.runs])
        return tuple(part[index] for part in self.runs[0].train_set)

    def gradients(self, x, y, mask) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stacked gradients of every member's loss on its batch (x [K, B, T, D], y and mask [K, B, T]), with
        each regularised member's alpha dOmega/dW added to its W's (before clipping, as
        :meth:`rnngrad.run.Run.train_step`), and per member the train row's numbers as a [6, K] tensor: loss,
        gradient norm, metric, share of sequences right, the largest |g_i| (what value clipping compares with its
        bound) and Omega (NaN where alpha is 0)."""
        spec = self.runs[0].spec
        act = ACTIVATIONS[spec["activation"]]
        members, batch, steps, _ = x.shape
        inputs = aligned(x.transpose(1, 2))
        lengths = None
        if spec["train_lengths"]:  # each member's steps at the T it drew (Stack.draw padded its batch)
            task, variant, params = spec["task"], spec["variant"], spec["task_params"]
            lengths = [tasks.sequence_length(task, run.batch_length, variant, **params) for run in self.runs]
        outputs, states = stacked_forward(inputs, *self.params, act, lengths)
        with torch.enable_grad():
            leaf = outputs.detach().requires_grad_()
            # [K, B, T, O], contiguous whatever K: a view's layout would set the order of the sums below.
            scores = leaf.view(members, -1, steps, batch).permute(0, 3, 2, 1).contiguous()
            losses = position_losses(spec["task"], scores.flatten(0, 1), y.flatten(0, 1)).view(y.shape)
            loss = (losses * mask).sum((1, 2)) / mask.sum((1, 2))  # losses.masked_loss of each member
        (grad_outputs,) = torch.autograd.grad(loss.sum(), leaf)
        grads, deltas = stacked_backward(aligned(grad_outputs), inputs, self.params[0], self.params[3], states, act)
        omega = torch.full((members,), math.nan, dtype=loss.dtype)
        chosen = [k for k, alpha in enumerate(self.alphas) if alpha]
        if chosen:  # Omega of the regularised members only, each from its own blocks (copied where some are not)
            parts = (self.params[0], states, deltas)
            if len(chosen) < members:
                parts = tuple(aligned(part[chosen]) for part in parts)
            value, grad_omega = stacked_omega(*parts, act)
            alphas = torch.tensor([self.alphas[k] for k in chosen], dtype=grads[0].dtype)
            grads[0][chosen] += _per_member(alphas, grad_omega) * grad_omega
            omega[chosen] = value
        norms = torch.linalg.vector_norm(torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1), dim=1)
        rule = {} if spec["error_rule"] is None else {"error_rule": spec["error_rule"]}  # as losses.metrics
        metric, right = tasks.get(spec["task"]).metrics(scores.detach(), y, mask, **rule)
        largest = torch.stack([g.flatten(1).abs().amax(1) for g in grads], 1).amax(1)  # run.grad_largest
        return grads, torch.stack([loss.detach(), norms, metric, right, largest, omega])

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
        """The logging and evaluation due, then one update, for every active member: one stacked forward and
        backward, and one read of the [6, K] row numbers (the only host transfer). A member that trains until
        solved and meets its criterion at this step's evaluation leaves before the update, as alone."""
        for run in self.active:
            run.before_step()
        self._leave([run for run in self.active if run.solved_at is None])
        if not self.active:
            return
        grads, numbers = self.stack.gradients(*self.stack.draw())
        name = tasks.get(self.active[0].spec["task"]).METRIC_NAME
        finite = [
            run.record_train(
                loss, {"metric": metric, "metric_name": name, "seq_solved_frac": right}, norm, omega, largest
            )
            for run, loss, norm, metric, right, largest, omega in zip(self.active, *numbers.tolist(), strict=True)
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
