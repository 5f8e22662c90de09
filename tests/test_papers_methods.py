"""The papers' methods in training: fresh data, mixed lengths, training until solved, extra test lengths and
Pascanu et al.'s regulariser, each checked against an independent computation or a property that must hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import datasets, make_spec, read_run, run_files  # noqa: F401 - datasets is a fixture

from rnngrad import regularizer, tables, tasks
from rnngrad.contract import RUN_FILES
from rnngrad.losses import masked_loss
from rnngrad.train import Run, clip_gradients, fresh_batch, is_clipped, train, train_group


def fresh_spec(datasets, **overrides):  # noqa: F811
    return make_spec(datasets, fresh_data=True, train_data=None, **overrides)


def test_fresh_batches_are_a_function_of_seed_and_step(datasets):  # noqa: F811
    spec = fresh_spec(datasets)
    same = [fresh_batch(spec, 5)[1] for _ in range(2)]
    assert all(np.array_equal(same[0][key], same[1][key]) for key in same[0])
    assert not np.array_equal(fresh_batch(spec, 6)[1]["x"], same[0]["x"])
    assert not np.array_equal(fresh_batch({**spec, "seed": 1}, 5)[1]["x"], same[0]["x"])
    test = tasks.load_arrays(spec["test_data"])  # never a prefix of the stored test set (seed 2)
    assert not any(np.array_equal(fresh_batch(spec, step)[1]["x"], test["x"][:16]) for step in range(4))


def test_fresh_data_needs_no_training_file_and_is_deterministic(datasets, tmp_path):  # noqa: F811
    spec = fresh_spec(datasets, steps=20)
    assert train(spec, tmp_path / "a")["status"] == "completed"
    train(spec, tmp_path / "b")
    assert run_files(tmp_path / "a") == run_files(tmp_path / "b")
    train(make_spec(datasets, steps=20), tmp_path / "stored")  # the same run on the stored training set
    assert not read_run(tmp_path / "a")["metrics"].equals(read_run(tmp_path / "stored")["metrics"])


def test_fresh_data_run_resumes_bit_for_bit(datasets, tmp_path, monkeypatch):  # noqa: F811
    """Interrupt a fresh-data, mixed-length run right after its step-10 checkpoint: the rerun resumes there and ends
    with the files of an uninterrupted run (the batch at a step depends on nothing but the seed and the step)."""
    spec = fresh_spec(datasets, steps=30, train_lengths=[5, 12], task="adding", T=5)
    train(spec, tmp_path / "clean")
    save_checkpoint = Run.save_checkpoint

    def interrupted(run):
        save_checkpoint(run)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Run, "save_checkpoint", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(spec, tmp_path / "killed")
    assert (tmp_path / "killed" / "checkpoint.pt").exists()
    train(spec, tmp_path / "killed")
    assert run_files(tmp_path / "killed") == run_files(tmp_path / "clean")


def test_mixed_lengths_draw_each_batch_s_length_from_the_range(datasets, tmp_path):  # noqa: F811
    spec = fresh_spec(datasets, steps=40, train_lengths=[5, 12], task="adding", T=5)
    train(spec, tmp_path)
    train_rows = read_run(tmp_path)["metrics"].query("split == 'train'")
    assert train_rows.length.between(5, 12).all() and train_rows.length.nunique() >= 5
    assert (read_run(tmp_path)["metrics"].query("split == 'test'").length == 5).all()
    lengths = [fresh_batch(spec, step)[0] for step in range(40)]
    assert lengths == train_rows.length.tolist()
    assert all(fresh_batch(spec, step)[1]["x"].shape[1] == n for step, n in enumerate(lengths))


def first_new_minimum(ratios: list[float]) -> int:
    """The first index after 0 whose value is below every earlier one."""
    return next(i for i in range(1, len(ratios)) if ratios[i] < min(ratios[:i]))


def test_until_solved_stops_at_the_first_evaluation_that_meets_the_criterion(datasets, tmp_path):  # noqa: F811
    """The threshold is set so that the full run first meets it at an evaluation step s in the middle: the run
    that trains until solved stops there, writes every file, logs spectra at s, and its rows are the full run's
    up to s."""
    spec = make_spec(datasets, steps=60, eval_every=10, lr=0.01)
    full = train(spec, tmp_path / "full")
    test = read_run(tmp_path / "full")["metrics"].query("split == 'test'")
    ratios = (test.metric / full["baseline_loss"]).tolist()
    stop = int(test.step.iloc[first_new_minimum(ratios)])
    assert 0 < stop < 60, "the loss must fall within the run for this test"
    criterion = {"criterion": "metric", "threshold": ratios[first_new_minimum(ratios)]}
    status = train({**spec, "until_solved": criterion}, tmp_path / "stopped")
    assert (status["status"], status["steps_done"], status["solved_at"]) == ("completed", stop, stop)
    assert sorted(p.name for p in (tmp_path / "stopped").iterdir()) == sorted(RUN_FILES)
    stopped, whole = read_run(tmp_path / "stopped"), read_run(tmp_path / "full")
    kept = whole["metrics"].query("step < @stop or (step == @stop and split == 'test')").reset_index(drop=True)
    pd.testing.assert_frame_equal(stopped["metrics"], kept)
    assert stopped["jacobians"].step.max() == stop and stopped["gradients"].step.max() == stop
    row = tables.read_run(tmp_path / "stopped", {"adding": criterion})[0]
    assert row.solved.item() and row.steps_to_solve.item() == stop


def test_extra_lengths_are_tested_at_the_end_and_tabled(datasets, tmp_path):  # noqa: F811
    spec = make_spec(
        datasets, task="adding", T=5, steps=20, eval_lengths=[20], eval_data=[datasets[("adding", 20, "test")]]
    )
    train(spec, tmp_path)
    metrics = read_run(tmp_path)["metrics"]
    extra = metrics.query("split == 'test_length'")
    assert extra[["step", "length"]].values.tolist() == [[20, 20]]
    _, lengths = tables.read_run(tmp_path, {"adding": 0.01})
    assert lengths[["length", "trained"]].values.tolist() == [[5, True], [20, False]]
    final = metrics.query("split == 'test' and step == 20")
    assert lengths.metric.iloc[0] == final.metric.item()
    assert lengths.error_rate.iloc[1] == pytest.approx(1 - extra.seq_solved_frac.item())
    assert lengths.baseline_loss.tolist() == pytest.approx([1 / 6, 1 / 6])
    solved = [m <= 0.01 / 6 for m in lengths.metric]
    assert lengths.solved.tolist() == solved


def test_regularizer_adds_alpha_domega_dw_to_the_loss_gradient(datasets, tmp_path):  # noqa: F811
    """One plain-SGD step with alpha = 4: W moves by -lr (dE/dW + alpha dOmega/dW), computed here from autograd's
    loss gradient and rnngrad.regularizer on the same fresh batch; U, b, V, c by -lr dE/d(param)."""
    spec = fresh_spec(datasets, optimizer="sgd", lr=0.1, steps=1, regularizer=4.0, dtype="float64", eval_every=5)
    run = Run(spec, tmp_path)
    before = {name: p.detach().clone() for name, p in run.model.named_parameters()}
    x, y, mask = run._on_device(tasks.get("adding").to_model(fresh_batch(spec, 0)[1]))
    params = dict(run.model.named_parameters())
    states = run.model.states(x)
    loss = masked_loss("adding", run.model.readout(states), y, mask)
    grads = dict(zip(params, torch.autograd.grad(loss, [*params.values()], retain_graph=True), strict=True))
    grad_states = torch.autograd.grad(loss, states)[0]
    omega, grad_omega = regularizer.omega(params["W"].detach(), states.detach(), grad_states, "tanh")
    assert run.train_step()
    expected = {name: before[name] - 0.1 * grads[name] for name in params}
    expected["W"] = expected["W"] - 0.1 * 4.0 * grad_omega
    for name, param in run.model.named_parameters():
        torch.testing.assert_close(param.detach(), expected[name], rtol=1e-12, atol=1e-14)
    assert run.rows[-1]["omega"] == pytest.approx(float(omega), rel=1e-12) and float(omega) > 0


def test_without_the_regulariser_omega_is_not_logged(datasets, tmp_path):  # noqa: F811
    train(make_spec(datasets, steps=5), tmp_path)
    assert read_run(tmp_path)["metrics"].omega.isna().all()


def test_group_using_a_method_the_stack_lacks_trains_sequentially(datasets, tmp_path, capsys):  # noqa: F811
    specs = [fresh_spec(datasets, run_id=f"m{seed}", seed=seed, steps=4, hidden=8, batch_size=8) for seed in (0, 1)]
    status = train_group(specs, tmp_path)
    assert [m["path"] for m in status["runs"]] == ["sequential"] * 2
    assert "one after another (the batched path does not implement fresh_data)" in capsys.readouterr().out
    for spec in specs:  # the sequential path: each member's files are those it writes alone
        train(spec, tmp_path / "alone" / spec["run_id"])
        assert run_files(tmp_path / spec["run_id"]) == run_files(tmp_path / "alone" / spec["run_id"])


def test_value_clipping_clamps_each_element_where_norm_clipping_rescales():
    """By hand: g = ((0.5, -2), (3, 0.1)), (-0.2); ||g|| = sqrt(13.3) = 3.647. At c = 1 value clipping gives
    ((0.5, -1), (1, 0.1)), (-0.2); at c = 3.5 the norm is clipped (3.647 > 3.5) but no element is (3 < 3.5), so the
    clipped column differs between the modes."""
    params = [torch.zeros(2, 2, requires_grad=True), torch.zeros(1, requires_grad=True)]
    grads = [torch.tensor([[0.5, -2.0], [3.0, 0.1]]), torch.tensor([-0.2])]
    norm, largest = 13.3**0.5, 3.0
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    value = {"clip": 1.0, "clip_mode": "value"}
    assert is_clipped(value, norm, largest)
    clip_gradients(params, value, norm)
    assert torch.equal(params[0].grad, torch.tensor([[0.5, -1.0], [1.0, 0.1]]))
    assert torch.equal(params[1].grad, torch.tensor([-0.2]))
    assert is_clipped({"clip": 3.5, "clip_mode": "norm"}, norm, largest)
    assert not is_clipped({"clip": 3.5, "clip_mode": "value"}, norm, largest)
    assert not is_clipped({"clip": None, "clip_mode": "value"}, norm, largest)
    with pytest.raises(ValueError, match="clip_mode.*allowed.*value"):
        is_clipped({"clip": 1.0, "clip_mode": "elementwise"}, norm, largest)


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_value_clipped_update_is_the_hand_computed_one(datasets, tmp_path, model):  # noqa: F811
    """One SGD step with clip_mode value: p <- p - lr clamp(g, -c, c), g autograd's gradient of the batch the run
    draws, c the median |g_i| (so that some elements are clamped and some are not); the train row keeps ||g||
    before clipping and says clipped."""
    lstm = {"model": "lstm", "activation": None, "init": None, "scale": None} if model == "lstm" else {}
    spec = make_spec(datasets, optimizer="sgd", lr=0.1, clip=1.0, clip_mode="value", steps=1, **lstm)
    run = Run(spec, tmp_path)
    sampler = run.sampler.get_state()
    x, y, mask = run.draw_batch()
    run.sampler.set_state(sampler)
    params = list(run.model.parameters())
    before = [p.detach().clone() for p in params]
    grads = torch.autograd.grad(masked_loss("adding", run.model(x), y, mask), params)
    clip = float(torch.cat([g.flatten() for g in grads]).abs().median())
    run.spec = {**spec, "clip": clip}
    assert run.train_step()
    flat = torch.cat([g.flatten() for g in grads]).abs()
    assert (flat > clip).any() and (flat < clip).any()
    for p, start, g in zip(params, before, grads, strict=True):
        torch.testing.assert_close(p.detach(), start - 0.1 * g.clamp(-clip, clip), rtol=1e-6, atol=1e-8)
    row = run.rows[-1]
    assert row["clipped"] and row["grad_norm"] == pytest.approx(float(torch.linalg.vector_norm(flat)), rel=1e-6)
