"""The batched group path: agreement with the sequential path, divergence of one member, resume, determinism.

Tolerance against the sequential path: rtol 1e-4 on every logged number. Training is float32 and the stacked
path sums in another order (batched matmuls, per-member reductions of stacked tensors), so each op differs from
the sequential one by a few float32 ulps (1.2e-7 relative). In a stable run these differences stay near that
size (measured: at most about 1e-5 relative over these runs, rmsprop the largest, since it divides by the root of
the squared gradients); rtol 1e-4 keeps a tenfold margin, while a wrong rule (a missing bias correction, clipping
of the wrong member, a batch from the wrong sampler) moves the losses by 1e-2 or more. In an exploding run the
differences grow like the run's own sensitivity (a relu run with gradient norm 30 drifted by 1e-2 in 30 steps),
so there the tests hold the batched path to itself bit for bit instead: a member's numbers do not depend on the
other members.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import make_batch
from test_train import datasets, make_spec, read_run  # noqa: F401 - datasets is a fixture

from rnngrad import checkpoints, regularizer
from rnngrad.batched import (
    Stack,
    aligned,
    can_batch,
    stackable,
    stacked_forward,
    stacked_omega,
    train_batched,
    unstacked_methods,
)
from rnngrad.contract import RUN_FILES
from rnngrad.groups import group_specs
from rnngrad.io import read_json
from rnngrad.models import ACTIVATIONS, VanillaRNN
from rnngrad.optim import OPTIMIZERS, Optimizer
from rnngrad.run import clip_gradients, is_clipped
from rnngrad.train import train, train_group

RTOL = 1e-4


def assert_close_runs(batched, sequential, batch_size: int) -> None:
    """Every table of two run folders equal within RTOL (seq_solved_frac: within one sequence of the batch)."""
    for name, frame in read_run(sequential).items():
        other = read_run(batched)[name]
        if name == "metrics":
            pd.testing.assert_series_equal(other.seq_solved_frac, frame.seq_solved_frac, atol=1 / batch_size)
            other, frame = other.drop(columns="seq_solved_frac"), frame.drop(columns="seq_solved_frac")
        pd.testing.assert_frame_equal(other, frame, check_exact=False, rtol=RTOL, atol=1e-9)


def as_text(statuses: list[dict]) -> str:
    """Statuses compared as JSON text: a diverged run's NaN final loss is unequal to itself."""
    return json.dumps(statuses, sort_keys=True)


def same_files(a, b) -> bool:
    return (a / "status.json").read_bytes() == (b / "status.json").read_bytes()  # holds every file's sha256


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_batched_agrees_with_sequential(datasets, tmp_path, activation, optimizer):  # noqa: F811
    lr = 0.01 if optimizer in ("sgd", "momentum") else 0.003
    specs = [
        make_spec(datasets, activation=activation, optimizer=optimizer, lr=lr, steps=20, seed=seed, clip=clip)
        for seed, clip in ((0, None), (1, 0.2))
    ]
    statuses = train_batched(specs, [tmp_path / f"b{i}" for i in range(2)])
    for i, (spec, status) in enumerate(zip(specs, statuses, strict=True)):
        assert status == read_json(tmp_path / f"b{i}" / "status.json") and status["status"] == "completed"
        assert sorted(p.name for p in (tmp_path / f"b{i}").iterdir()) == sorted(RUN_FILES)
        train(spec, tmp_path / f"s{i}")
        assert_close_runs(tmp_path / f"b{i}", tmp_path / f"s{i}", spec["batch_size"])
        assert (
            status["sha256"]["model_init.pt"]
            == read_json(tmp_path / f"s{i}" / "status.json")["sha256"]["model_init.pt"]
        )
        batched, sequential = (torch.load(tmp_path / d / "model_final.pt") for d in (f"b{i}", f"s{i}"))
        for name, tensor in sequential.items():
            torch.testing.assert_close(batched[name], tensor, rtol=RTOL, atol=1e-6, msg=name)
    assert read_run(tmp_path / "b1")["metrics"].clipped.any()  # the clipping path ran


def test_copy_task_agrees_with_sequential(datasets, tmp_path):  # noqa: F811
    specs = [make_spec(datasets, task="copy", steps=20, seed=seed) for seed in (0, 1)]
    train_batched(specs, [tmp_path / "b0", tmp_path / "b1"])
    for i, spec in enumerate(specs):
        train(spec, tmp_path / f"s{i}")
        assert_close_runs(tmp_path / f"b{i}", tmp_path / f"s{i}", spec["batch_size"])


def diverging_group(datasets) -> list[dict]:  # noqa: F811
    """relu with sgd at lr 0.1 (test_train's exploding run): the first member, W = 8 Q without clipping, diverges;
    clipping keeps the same scale finite, and the third member starts at scale 1."""
    base = make_spec(datasets, T=5, activation="relu", optimizer="sgd", lr=0.1, steps=40, checkpoint_every=10)
    return [{**base, "scale": 8.0}, {**base, "scale": 8.0, "clip": 1.0}, {**base, "scale": 1.0, "clip": 1.0, "seed": 1}]


def test_diverging_member_stops_alone(datasets, tmp_path):  # noqa: F811
    """The diverging member ends as it does alone; the others end bit for bit as in a group without it."""
    specs = diverging_group(datasets)
    statuses = train_batched(specs, [tmp_path / f"g{i}" for i in range(3)])
    assert [s["status"] for s in statuses] == ["diverged", "completed", "completed"]
    assert 0 < statuses[0]["diverged_at"] == statuses[0]["steps_done"] < 40
    assert statuses[0]["diverged_at"] == train(specs[0], tmp_path / "sequential")["diverged_at"]
    for i in (1, 2):  # no NaN leaked into the healthy members
        metrics = read_run(tmp_path / f"g{i}")["metrics"]
        assert (metrics.loss.abs() < float("inf")).all()
        assert (metrics.query("split == 'train'").grad_norm < float("inf")).all()
    train_batched(specs[:1], [tmp_path / "alone"])
    assert same_files(tmp_path / "g0", tmp_path / "alone")
    train_batched(specs[1:], [tmp_path / "h1", tmp_path / "h2"])
    assert same_files(tmp_path / "g1", tmp_path / "h1") and same_files(tmp_path / "g2", tmp_path / "h2")


def test_killed_group_resumes_bit_for_bit(datasets, tmp_path, monkeypatch):  # noqa: F811
    """Kill the group while it writes its second round of checkpoints: the first member then resumes from step 20,
    the others from step 10, and the diverged member (finished before the kill) is skipped. The rerun ends with
    the files of an uninterrupted run, which itself is deterministic."""
    specs = diverging_group(datasets)
    clean = [tmp_path / f"clean{i}" for i in range(3)]
    statuses = train_batched(specs, clean)
    assert as_text(statuses) == as_text(train_batched(specs, [tmp_path / f"again{i}" for i in range(3)]))
    assert statuses[0]["diverged_at"] < 20

    saved = []
    save_checkpoint = checkpoints.save_checkpoint

    def killed_mid_round(run):
        if run.step == 20 and 20 in saved:
            raise KeyboardInterrupt
        save_checkpoint(run)
        saved.append(run.step)

    killed = [tmp_path / f"killed{i}" for i in range(3)]
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "save_checkpoint", killed_mid_round)
        with pytest.raises(KeyboardInterrupt):
            train_batched(specs, killed)
    assert saved[-1] == 20 and (killed[0] / "status.json").exists()
    assert [torch.load(d / "checkpoint.pt", weights_only=True)["step"] for d in killed[1:]] == [20, 10]
    mtime = (killed[0] / "status.json").stat().st_mtime_ns
    assert as_text(train_batched(specs, killed)) == as_text(statuses)
    assert (killed[0] / "status.json").stat().st_mtime_ns == mtime  # skipped, not retrained
    for a, b in zip(clean, killed, strict=True):
        assert sorted(p.name for p in b.iterdir()) == sorted(RUN_FILES)
        for name, frame in read_run(a).items():
            pd.testing.assert_frame_equal(read_run(b)[name], frame, check_exact=True)


def stacked_member(task: str, hidden: int, seed: int, clip=None) -> SimpleNamespace:
    """The parts of a run.Run that a Stack uses: model, optimizer and spec."""
    n_in, n_out = (10, 10) if task == "copy" else (2, 1)
    model = VanillaRNN(n_in, hidden, n_out, "tanh", scale=1.5, seed=seed)
    optimizer = Optimizer("adam", model.parameters(), 0.01)
    spec = {
        "task": task,
        "activation": "tanh",
        "clip": clip,
        "clip_mode": "norm",
        "error_rule": None,
        "train_lengths": None,
    }
    return SimpleNamespace(model=model, optimizer=optimizer, spec=spec)


@pytest.mark.parametrize(
    ("task", "hidden", "batch", "steps"),
    [
        ("adding", 1, 8, 50), ("adding", 3, 8, 20), ("adding", 32, 32, 50), ("copy", 16, 16, 9),
        ("adding", 12, 5, 20), ("copy", 20, 5, 9), ("adding", 36, 20, 20),
    ],
)  # fmt: skip
def test_a_members_gradients_do_not_depend_on_the_group(task, hidden, batch, steps):
    """What the bit-for-bit guarantees rest on (divergence, resume with members at different steps): a member's
    loss, gradient norm, batch metrics and gradients are the same bits in a group of three as alone. Scalar case,
    default shapes, copy, and admitted hidden sizes that are no power of 2 with odd batch sizes."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        x, y, mask = make_batch(task, batch, steps, int(torch.randint(100, (1,), generator=generator)))
        batches.append((x.float(), y.float() if y.is_floating_point() else y, mask))
    x, y, mask = (torch.stack(parts) for parts in zip(*batches, strict=True))
    grads, numbers = Stack([stacked_member(task, hidden, seed) for seed in range(3)]).gradients(x, y, mask)
    for k in range(3):
        alone, alone_numbers = Stack([stacked_member(task, hidden, k)]).gradients(
            x[k : k + 1], y[k : k + 1], mask[k : k + 1]
        )
        # loss, gradient norm, metric, share right, largest |g_i| and Omega (NaN: not regularised)
        torch.testing.assert_close(numbers[:, k], alone_numbers[:, 0], rtol=0, atol=0, equal_nan=True)
        assert all(torch.equal(grad[k], grad_alone[0]) for grad, grad_alone in zip(grads, alone, strict=True))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_stacked_update_is_the_optimizers_bit_for_bit(optimizer):
    """Clipping and the optimizer step on the stack equal Optimizer.step on each member, members at different
    step counts (as after a resume) and one clipped."""
    members, stacked = [], []
    for seed in range(3):
        model = VanillaRNN(2, 8, 1, seed=seed)
        twin = VanillaRNN(2, 8, 1, seed=seed)
        members.append((twin, Optimizer(optimizer, twin.parameters(), 0.01, 0.9, 0.9)))
        stacked.append(SimpleNamespace(model=model, optimizer=Optimizer(optimizer, model.parameters(), 0.01, 0.9, 0.9)))
        stacked[-1].spec = {"clip": 0.5 if seed == 2 else None, "clip_mode": "norm"}
    stack = Stack(stacked)
    generator = torch.Generator().manual_seed(0)
    for step in range(4):
        grads = [torch.randn(p.shape, generator=generator) for p in stack.params]
        norms = [float(torch.linalg.vector_norm(torch.stack([g[k].norm() for g in grads]))) for k in range(3)]
        for k, (twin, twin_optimizer) in enumerate(members):
            if step == 0 and k == 1:
                continue  # member 1 is one step behind the others
            for p, grad in zip(twin.parameters(), grads, strict=True):
                p.grad = grad[k].clone() * (0.5 / norms[k] if k == 2 and norms[k] > 0.5 else 1.0)
            twin_optimizer.step()
        if step == 0:
            stack_1 = Stack([stacked[0], stacked[2]])
            stack_1.update([g[[0, 2]] for g in grads], torch.tensor([norms[0], norms[2]]))
            stack = Stack(stacked)
        else:
            stack.update(grads, torch.tensor(norms))
    for (twin, twin_optimizer), member in zip(members, stacked, strict=True):
        for a, b in zip(twin.parameters(), member.model.parameters(), strict=True):
            assert torch.equal(a, b)
        assert twin_optimizer.steps == member.optimizer.steps
        for key, buffers in twin_optimizer.buffers.items():
            assert all(torch.equal(a, b) for a, b in zip(buffers, member.optimizer.buffers[key], strict=True))


def test_stacked_value_clipping_is_each_member_s_bit_for_bit():
    """Members clipping by value (c = 0.3), by norm (c = 0.5) and not at all share a stack: each one's update is
    run.clip_gradients and Optimizer.step on it alone, bit for bit (Arjovsky et al.'s RMSprop: init 1e-3, eps 0)."""
    settings = [(0.3, "value"), (0.5, "norm"), (None, "value")]
    members, stacked = [], []
    for seed, (clip, mode) in enumerate(settings):
        model, twin = VanillaRNN(2, 8, 1, seed=seed), VanillaRNN(2, 8, 1, seed=seed)
        options = {"rmsprop_alpha": 0.9, "rmsprop_eps": 0.0, "rmsprop_init": 1e-3}
        members.append((twin, Optimizer("rmsprop", twin.parameters(), 0.01, **options)))
        optimizer = Optimizer("rmsprop", model.parameters(), 0.01, **options)
        stacked.append(SimpleNamespace(model=model, optimizer=optimizer, spec={"clip": clip, "clip_mode": mode}))
    stack = Stack(stacked)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=generator) * 0.3 for p in stack.params]
        norms = [float(torch.linalg.vector_norm(torch.stack([g[k].norm() for g in grads]))) for k in range(3)]
        for k, (twin, twin_optimizer) in enumerate(members):
            for p, grad in zip(twin.parameters(), grads, strict=True):
                p.grad = grad[k].clone()
            largest = max(float(p.grad.abs().max()) for p in twin.parameters())
            if is_clipped(stacked[k].spec, norms[k], largest):
                clip_gradients(list(twin.parameters()), stacked[k].spec, norms[k])
            twin_optimizer.step()
        stack.update(grads, torch.tensor(norms))
    assert any(g.abs().max() > 0.3 for g in grads)  # the value bound had elements to clamp
    for (twin, _), member in zip(members, stacked, strict=True):
        for a, b in zip(twin.parameters(), member.model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_value_clipping_batched_agrees_with_sequential_and_alone(datasets, tmp_path):  # noqa: F811
    """Arjovsky et al.'s baseline training (clip_mode value, their RMSprop) on both paths: within RTOL of the
    sequential path, a clipped row only where ||g|| > c (max |g_i| <= ||g||), and the value-clipped member's files
    the same bits in a group with a norm-clipped and an unclipped member as alone."""
    options = {"optimizer": "rmsprop", "lr": 0.003, "rmsprop_eps": 0.0, "rmsprop_init": 1e-3, "steps": 20}
    settings = [(None, "norm"), (0.02, "value"), (0.2, "norm")]
    specs = [
        make_spec(datasets, seed=seed, clip=clip, clip_mode=mode, **options)
        for seed, (clip, mode) in enumerate(settings)
    ]
    assert can_batch(specs)
    train_batched(specs, [tmp_path / f"b{i}" for i in range(3)])
    for i, spec in enumerate(specs):
        train(spec, tmp_path / f"s{i}")
        assert_close_runs(tmp_path / f"b{i}", tmp_path / f"s{i}", spec["batch_size"])
    rows = read_run(tmp_path / "b1")["metrics"].query("split == 'train'")
    assert rows.clipped.any() and (rows.grad_norm[rows.clipped] > 0.02).all()
    train_batched(specs[1:2], [tmp_path / "alone"])
    assert same_files(tmp_path / "b1", tmp_path / "alone")


def test_can_batch_needs_shared_keys_and_small_shapes(datasets):  # noqa: F811
    specs = [make_spec(datasets, hidden=32, batch_size=32, seed=seed, scale=scale) for seed, scale in ((0, 1), (1, 2))]
    assert can_batch(specs) and not can_batch(specs[:1])
    assert not can_batch([specs[0], {**specs[1], "activation": "relu"}])
    assert not can_batch([specs[0], {**specs[1], "lr": 0.1}])
    assert not can_batch([{**spec, "hidden": 128, "batch_size": 64} for spec in specs])
    lstm = {"model": "lstm", "activation": None, "init": None, "scale": None}
    assert not can_batch([{**spec, **lstm} for spec in specs])
    with pytest.raises(ValueError, match="share"):
        train_batched([specs[0], {**specs[1], "hidden": 8}], ["a", "b"])


def test_stackable_admits_every_hidden_size_but_one_unit_with_several_outputs(datasets):  # noqa: F811
    """Members' blocks start on 64-byte boundaries whatever the hidden size (rnngrad.batched.member_blocks), so
    sizes off the 4-unit grid stack too; one unit with several outputs still rounds with the group (the sweep)."""
    specs = [make_spec(datasets, seed=seed) for seed in range(2)]
    for hidden in (1, 4, 5, 7, 12, 31, 50, 100):
        assert stackable([{**spec, "hidden": hidden} for spec in specs])
    copy = {"task": "copy", "hidden": 1}
    assert not stackable([{**spec, **copy} for spec in specs])


@pytest.mark.parametrize(("task", "hidden", "batch"), [("adding", 5, 7), ("adding", 50, 13), ("copy", 7, 5)])
def test_misaligned_hidden_sizes_keep_a_members_bits(task, hidden, batch):
    """Hidden sizes whose blocks a plain stack puts off 64-byte boundaries (5, 7, 50: members after the first
    rounded differently before member_blocks): a member's numbers and gradients the same bits in a group of 15
    as alone."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(15):
        x, y, mask = make_batch(task, batch, 9, int(torch.randint(100, (1,), generator=generator)))
        batches.append((x.float(), y.float() if y.is_floating_point() else y, mask))
    x, y, mask = (torch.stack(parts) for parts in zip(*batches, strict=True))
    grads, numbers = Stack([stacked_member(task, hidden, seed) for seed in range(15)]).gradients(x, y, mask)
    for k in (0, 1, 7, 14):
        alone, alone_numbers = Stack([stacked_member(task, hidden, k)]).gradients(
            x[k : k + 1], y[k : k + 1], mask[k : k + 1]
        )
        torch.testing.assert_close(numbers[:, k], alone_numbers[:, 0], rtol=0, atol=0, equal_nan=True)
        assert all(torch.equal(grad[k], grad_alone[0]) for grad, grad_alone in zip(grads, alone, strict=True))


# The papers' methods on the stacked path (groups.stack_methods): the regulariser (each member its own alpha, 0
# included), fresh data, until solved and extra evaluation lengths, at misaligned hidden sizes and odd batches.


def test_stacked_omega_is_the_regularizers_member_by_member():
    """stacked_omega equals regularizer.omega on each member within float32 rounding (and to 1e-12 in float64),
    and each member's Omega and dOmega/dW are the same bits in a group of three as alone, at H = 50, B = 7."""
    hidden, batch, steps = 50, 7, 9
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        generator = torch.Generator().manual_seed(0)
        W = torch.randn(3, hidden, hidden, generator=generator, dtype=dtype) * 1.2 / hidden**0.5  # noqa: N806
        states = torch.tanh(torch.randn(3, batch, steps, hidden, generator=generator, dtype=dtype))
        grad_states = torch.randn(3, batch, steps, hidden, generator=generator, dtype=dtype)
        deltas = torch.stack(
            [regularizer.backprop(W[k], states[k], grad_states[k], "tanh")[0] for k in range(3)]
        )  # [K, T, B, H]
        step_major = states.transpose(1, 2)
        act = ACTIVATIONS["tanh"]
        value, grad = stacked_omega(aligned(W), aligned(step_major), aligned(deltas), act)
        for k in range(3):
            expected_value, expected_grad = regularizer.omega(W[k], states[k], grad_states[k], "tanh")
            torch.testing.assert_close(value[k], expected_value, rtol=tol, atol=0)
            torch.testing.assert_close(grad[k], expected_grad, rtol=tol, atol=tol * float(expected_grad.abs().max()))
            one = stacked_omega(aligned(W[k : k + 1]), aligned(step_major[k : k + 1]), aligned(deltas[k : k + 1]), act)
            assert torch.equal(one[0][0], value[k]) and torch.equal(one[1][0], grad[k])
    assert float(value.min()) > 0


def methods_spec(datasets, **overrides) -> dict:  # noqa: F811
    """A run using the methods the stacked path trains where a config opts in: fresh data, Pascanu et al.'s SGD
    with norm clipping and the regulariser, an extra evaluation length."""
    spec = make_spec(
        datasets, fresh_data=True, train_data=None, optimizer="sgd", lr=0.01, clip=1.0, regularizer=4.0,
        eval_lengths=[5], eval_data=[datasets[("adding", 5, "test")]], stack_methods=True, steps=16, eval_every=4,
        checkpoint_every=8, log_at=[],
    )  # fmt: skip
    spec.update(overrides)
    return spec


def fig7_like_group(datasets, hidden: int, batch: int, size: int) -> list[dict]:  # noqa: F811
    """Fig. 7's arms as members: MSGD (no clip, alpha 0), MSGD-C (clip 1, alpha 0), MSGD-CR (clip 1, alpha 4)
    over seeds; one member trains until a criterion it cannot meet (so it runs every step), at misaligned sizes."""
    arms = [(None, 0.0), (1.0, 0.0), (1.0, 4.0)]
    specs = [
        methods_spec(datasets, hidden=hidden, batch_size=batch, seed=i, clip=arms[i % 3][0], regularizer=arms[i % 3][1])
        for i in range(size)
    ]
    specs[1]["until_solved"] = {"criterion": "metric", "threshold": 1e-12}
    return specs


def test_methods_stack_unless_a_spec_turns_them_off(datasets):  # noqa: F811
    specs = fig7_like_group(datasets, 50, 7, 3)
    assert can_batch(specs) and unstacked_methods(specs) == []
    assert can_batch([{**spec, "train_lengths": [8, 20]} for spec in specs])
    plain = [{key: value for key, value in spec.items() if key != "stack_methods"} for spec in specs]
    assert not can_batch(plain)
    assert unstacked_methods(plain) == ["regularizer", "fresh_data", "until_solved", "eval_lengths"]
    assert unstacked_methods([{**plain[0], "train_lengths": [4, 6]}])[-1] == "train_lengths"
    mixed = [{**spec, "test_lengths": [5, 20]} for spec in specs]  # evaluation only: stacks either way
    assert can_batch(mixed) and can_batch([{**spec, "test_lengths": [5, 20]} for spec in plain[:1]] * 2) is False


def test_stack_methods_key_marks_only_the_runs_using_them(datasets):  # noqa: F811
    plain = make_spec(datasets, run_id="plain")
    fresh = make_spec(datasets, run_id="fresh", fresh_data=True)
    for on in (False, True):
        groups = group_specs([plain, fresh], max_runs=2, stack_methods=on)
        members = next(iter(groups.values()))
        assert members[0] == plain and ("stack_methods" in members[1]) is on
    assert "stack_methods" in next(iter(group_specs([fresh], max_runs=1).values()))[0]  # on by default


@pytest.mark.parametrize("hidden", [50, 100])
def test_methods_batched_agree_with_sequential(datasets, tmp_path, hidden):  # noqa: F811
    """Every method on the stacked path within RTOL of the sequential path (each member's every table and final
    model), at H = 50 and 100 with an odd batch, regularised members included; Omega logged where alpha > 0."""
    specs = fig7_like_group(datasets, hidden, 7, 3)
    statuses = train_batched(specs, [tmp_path / f"b{i}" for i in range(3)])
    assert [s["steps_done"] for s in statuses] == [16] * 3
    for i, spec in enumerate(specs):
        train(spec, tmp_path / f"s{i}")
        assert_close_runs(tmp_path / f"b{i}", tmp_path / f"s{i}", spec["batch_size"])
        batched, sequential = (torch.load(tmp_path / d / "model_final.pt") for d in (f"b{i}", f"s{i}"))
        for name, tensor in sequential.items():
            torch.testing.assert_close(batched[name], tensor, rtol=RTOL, atol=1e-6, msg=name)
        metrics = read_run(tmp_path / f"b{i}")["metrics"]
        train_rows = metrics.query("split == 'train'")
        assert train_rows.omega.notna().all() == (spec["regularizer"] > 0) and train_rows.omega.notna().any() == (
            spec["regularizer"] > 0
        )
        assert metrics.query("split == 'test_length'").length.tolist() == [5]
    assert read_run(tmp_path / "b2")["metrics"].clipped.any()


@pytest.mark.parametrize(("hidden", "batch"), [(50, 7), (100, 5), (31, 13)])
def test_a_member_with_the_methods_does_not_depend_on_its_group(datasets, tmp_path, hidden, batch):  # noqa: F811
    """A member's files are the same bits in a group of 15 (Fig. 7's three arms over seeds, alphas 0 and 4, clipped
    or not, fresh data, one training until solved) as trained alone on the stacked path, at hidden sizes off the
    4-unit grid and odd batches."""
    specs = fig7_like_group(datasets, hidden, batch, 15)
    train_batched(specs, [tmp_path / f"g{i}" for i in range(15)])
    for i in (0, 1, 2, 8, 14):
        train_batched([specs[i]], [tmp_path / f"alone{i}"])
        assert same_files(tmp_path / f"g{i}", tmp_path / f"alone{i}"), i


def test_a_solved_member_stops_alone_with_the_files_it_writes_alone(datasets, tmp_path):  # noqa: F811
    """The criterion is set so that member 0 first meets it at an evaluation in the middle of its run: it stops
    there (no update at that step) and writes the files it writes alone; its rows are its full run's up to that
    step, and the others go on to the end with the bits they have alone."""
    specs = fig7_like_group(datasets, 50, 7, 3)
    specs = [{**spec, "steps": 24, "until_solved": None, "optimizer": "adam", "regularizer": 0.0} for spec in specs]
    full = train_batched(specs[:1], [tmp_path / "full"])[0]
    test = read_run(tmp_path / "full")["metrics"].query("split == 'test'")
    ratios = (test.metric / full["baseline_loss"]).tolist()
    first = next(i for i in range(1, len(ratios)) if ratios[i] < min(ratios[:i]))
    stop = int(test.step.iloc[first])
    assert 0 < stop < 24, "the loss must fall within the run for this test"
    specs[0]["until_solved"] = {"criterion": "metric", "threshold": ratios[first]}
    statuses = train_batched(specs, [tmp_path / f"g{i}" for i in range(3)])
    assert (statuses[0]["steps_done"], statuses[0]["solved_at"]) == (stop, stop)
    assert [s["steps_done"] for s in statuses[1:]] == [24, 24]
    assert sorted(p.name for p in (tmp_path / "g0").iterdir()) == sorted(RUN_FILES)
    train_batched(specs[:1], [tmp_path / "alone"])
    assert same_files(tmp_path / "g0", tmp_path / "alone")
    whole = read_run(tmp_path / "full")["metrics"]
    kept = whole.query("step < @stop or (step == @stop and split == 'test')").reset_index(drop=True)
    stopped = read_run(tmp_path / "g0")["metrics"]
    assert stopped.query("split == 'test_length'")[["step", "length"]].values.tolist() == [[stop, 5]]
    pd.testing.assert_frame_equal(stopped.query("split != 'test_length'"), kept)
    for i in (1, 2):
        train_batched(specs[i : i + 1], [tmp_path / f"alone{i}"])
        assert same_files(tmp_path / f"g{i}", tmp_path / f"alone{i}")


def test_killed_methods_group_resumes_bit_for_bit(datasets, tmp_path, monkeypatch):  # noqa: F811
    """Killed while it checkpoints at step 8, a group with fresh data and the regulariser at H = 50, B = 7
    resumes from its checkpoints and ends with the files of an uninterrupted run."""
    specs = fig7_like_group(datasets, 50, 7, 3)
    clean = [tmp_path / f"clean{i}" for i in range(3)]
    statuses = train_batched(specs, clean)
    saved = []
    save_checkpoint = checkpoints.save_checkpoint

    def killed(run):
        save_checkpoint(run)
        saved.append(run.step)
        if len(saved) == 2:
            raise KeyboardInterrupt

    runs = [tmp_path / f"killed{i}" for i in range(3)]
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "save_checkpoint", killed)
        with pytest.raises(KeyboardInterrupt):
            train_batched(specs, runs)
    assert saved == [8, 8] and not (runs[0] / "status.json").exists()
    assert as_text(train_batched(specs, runs)) == as_text(statuses)
    for a, b in zip(clean, runs, strict=True):
        assert same_files(a, b)


def test_a_group_that_opts_in_trains_its_methods_stacked(datasets, tmp_path):  # noqa: F811
    """Through train_group: with stack_methods (groups.stack_methods) a Fig. 7-like group takes the batched path;
    without it the same runs train one after another."""
    specs = [{**spec, "run_id": f"m{i}", "steps": 4} for i, spec in enumerate(fig7_like_group(datasets, 50, 7, 2))]
    assert [m["path"] for m in train_group(specs, tmp_path / "on")["runs"]] == ["batched"] * 2
    plain = [{key: value for key, value in spec.items() if key != "stack_methods"} for spec in specs]
    assert [m["path"] for m in train_group(plain, tmp_path / "off")["runs"]] == ["sequential"] * 2


# Mixed training lengths (train_lengths, Pascanu et al. 2013 section 4.1.1): each member draws its own T every step,
# its batch right-padded to the longest trainable T.


def mixed_lengths_group(datasets, task: str, size: int) -> list[dict]:  # noqa: F811
    """Fig. 7's arms over seeds, training on lengths drawn from [T - 3, T] (adding T = 20, copy T = 5)."""
    specs = fig7_like_group(datasets, 50, 7, size)
    T = 20 if task == "adding" else 5  # noqa: N806
    extra = {"eval_lengths": [], "eval_data": []} if task == "copy" else {}
    common = {
        "task": task, "T": T, "train_lengths": [T - 3, T], "variant": make_spec(datasets, task=task)["variant"],
        "task_params": make_spec(datasets, task=task)["task_params"], "test_data": datasets[(task, T, "test")], **extra,
    }  # fmt: skip
    return [{**spec, **common} for spec in specs]


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_mixed_training_lengths_batched_agree_with_sequential(datasets, tmp_path, task):  # noqa: F811
    """Each member's every table and final model within RTOL of the same run trained alone on the sequential path
    (which draws the same lengths, unpadded); the train rows carry each member's own drawn T."""
    specs = mixed_lengths_group(datasets, task, 3)
    train_batched(specs, [tmp_path / f"b{i}" for i in range(3)])
    drawn = []
    for i, spec in enumerate(specs):
        train(spec, tmp_path / f"s{i}")
        assert_close_runs(tmp_path / f"b{i}", tmp_path / f"s{i}", spec["batch_size"])
        batched, sequential = (torch.load(tmp_path / d / "model_final.pt") for d in (f"b{i}", f"s{i}"))
        for name, tensor in sequential.items():
            torch.testing.assert_close(batched[name], tensor, rtol=RTOL, atol=1e-6, msg=name)
        drawn.append(read_run(tmp_path / f"b{i}")["metrics"].query("split == 'train'").length.tolist())
    low, high = specs[0]["train_lengths"]
    assert all(low <= length <= high for lengths in drawn for length in lengths)
    assert len({length for lengths in drawn for length in lengths}) > 1 and drawn[0] != drawn[1]


def test_a_member_with_mixed_lengths_does_not_depend_on_its_group(datasets, tmp_path):  # noqa: F811
    """A member's files are the same bits in a group of 15 (members drawing different lengths at each step) as
    trained alone on the stacked path, at H = 50, B = 7."""
    specs = mixed_lengths_group(datasets, "adding", 15)
    train_batched(specs, [tmp_path / f"g{i}" for i in range(15)])
    for i in (0, 1, 2, 13):
        train_batched([specs[i]], [tmp_path / f"alone{i}"])
        assert same_files(tmp_path / f"g{i}", tmp_path / f"alone{i}"), i


def test_padded_steps_are_inert():
    """stacked_forward with lengths: a member's states up to its length are those of its unpadded sequence, and
    zero past it (so a relu member whose padding would overflow still reads finite outputs there)."""
    generator = torch.Generator().manual_seed(0)
    hidden, batch, steps = 6, 3, 8
    x = torch.randn(2, steps, batch, 2, generator=generator)
    W = torch.eye(hidden).expand(2, hidden, hidden) * 3.0  # noqa: N806 - grows without bound under relu
    U, b = torch.randn(2, hidden, 2, generator=generator), torch.ones(2, hidden)  # noqa: N806
    V, c = torch.randn(2, 1, hidden, generator=generator), torch.zeros(2, 1)  # noqa: N806
    act = ACTIVATIONS["relu"]
    parts = [aligned(t) for t in (x, W, U, b, V, c)]
    outputs, states = stacked_forward(*parts, act, [5, 8])
    _, unpadded = stacked_forward(*(aligned(t[:1]) for t in (x[:, :5], W, U, b, V, c)), act)
    assert torch.equal(states[0, :5], unpadded[0]) and not states[0, 5:].any()
    assert torch.isfinite(outputs).all()
