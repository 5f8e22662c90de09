"""The papers' methods in training: fresh data, mixed lengths, training until solved, extra test lengths and
Pascanu et al.'s regulariser, each checked against an independent computation or a property that must hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import datasets, make_spec, read_run, run_files  # noqa: F401 - datasets is a fixture

from rnngrad import checkpoints, regularizer, tables, tasks
from rnngrad.contract import RUN_FILES
from rnngrad.losses import masked_loss
from rnngrad.run import Run, clip_gradients, fresh_batch, is_clipped
from rnngrad.train import train, train_group


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
    save_checkpoint = checkpoints.save_checkpoint

    def interrupted(run):
        save_checkpoint(run)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "save_checkpoint", interrupted)
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


def test_group_keeping_its_methods_sequential_trains_one_after_another(datasets, tmp_path, capsys):  # noqa: F811
    specs = [fresh_spec(datasets, run_id=f"m{seed}", seed=seed, steps=4, hidden=8, batch_size=8) for seed in (0, 1)]
    status = train_group(specs, tmp_path)
    assert [m["path"] for m in status["runs"]] == ["sequential"] * 2
    assert "one after another (fresh_data: groups.stack_methods is false)" in capsys.readouterr().out
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


# --- a test set of mixed lengths (train.test_lengths) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "variant", "params"), [("temporal_order", "pascanu", {}), ("copy", "all", {"copy_len": 3})]
)
def test_mixed_length_sets_are_deterministic_in_the_seed_and_their_lengths_lie_in_range(task, variant, params):
    """Each sequence's T drawn from [min_T, T]: the same seed gives the same bytes, another seed others; every
    drawn length occurs, and every sequence is the task's sequence of its own length, zero-padded after its end
    (the loss positions end there)."""
    first = tasks.generate(task, 30, 400, 7, variant, min_T=10, **params)
    again = tasks.generate(task, 30, 400, 7, variant, min_T=10, **params)
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["length"], tasks.generate(task, 30, 400, 8, variant, min_T=10, **params)["length"])
    lengths = first["length"]
    assert lengths.min() >= 10 and lengths.max() <= 30 and set(lengths) == set(range(10, 31))
    own = {  # the padded width of a sequence of each drawn T (copy: T plus the copied symbols and the delimiter)
        int(T): tasks.get(task).layout(1, int(T), variant, **params)["mask"][0][1] for T in np.unique(lengths)
    }
    for row, T in enumerate(lengths):
        assert first["mask"][row].nonzero()[0].max() < own[int(T)] and not first["mask"][row, own[int(T)] :].any()
        assert not first["x"][row, own[int(T)] :].any()
    if task == "temporal_order":
        assert (first["mask"][np.arange(400), lengths - 1]).all() and (first["mask"].sum(1) == 1).all()


def test_mixed_length_set_round_trips_with_its_sha256_sidecar(tmp_path):
    sidecar = tasks.generate_file(tmp_path / "mixed.npz", "temporal_order", 30, 50, 3, "pascanu", min_T=10)
    assert sidecar["min_T"] == 10 and sidecar["T"] == 30 and set(sidecar["arrays"]) == {"x", "y", "mask", "length"}
    assert sidecar["baseline_loss"] == pytest.approx(np.log(4))
    arrays = tasks.load_arrays(tmp_path / "mixed.npz")
    expected = tasks.generate("temporal_order", 30, 50, 3, "pascanu", min_T=10)
    assert all(np.array_equal(arrays[name], expected[name]) for name in expected)
    sidecar["arrays"]["length"]["sha256"] = "0" * 64  # a stale sidecar is refused
    (tmp_path / "mixed.json").write_text(__import__("json").dumps(sidecar))
    with pytest.raises(tasks.DatasetError, match="length"):
        tasks.load(tmp_path / "mixed.npz")


def test_bad_min_t_is_refused_naming_it():
    with pytest.raises(tasks.DatasetError, match=r"min_T=31 is invalid.*allowed: 10 to T"):
        tasks.generate("temporal_order", 30, 4, 0, "pascanu", min_T=31)
    with pytest.raises(tasks.DatasetError, match=r"min_T=20 is invalid.*vary already"):
        tasks.generate("adding", 40, 4, 0, "hochreiter", min_T=20)


def test_a_run_with_a_mixed_length_test_set_is_scored_on_it(datasets, tmp_path):  # noqa: F811
    """The main test set (the one until_solved and the success criterion read) is the mixed file: the run's test
    rows are the model's loss on it, which is that of each sequence unpadded."""
    path = tmp_path / "data" / "mixed.npz"
    tasks.generate_file(path, "adding", 20, 64, 2, "le", min_T=5)
    spec = fresh_spec(datasets, steps=4, eval_every=2, test_data=str(path), test_lengths=[5, 20])
    train(spec, tmp_path / "run")
    metrics = read_run(tmp_path / "run")["metrics"]
    final = metrics[metrics.split == "test"].iloc[-1]
    model = Run(spec, tmp_path / "again").model
    model.load_state_dict(torch.load(tmp_path / "run" / "model_final.pt"))
    arrays = tasks.load_arrays(path)
    losses = []
    for row, T in enumerate(arrays["length"]):  # each sequence alone, at its own length
        x, y, mask = tasks.get("adding").to_model({name: arrays[name][row : row + 1, :T] for name in ("x", "mask")}
                                                  | {"y": arrays["y"][row : row + 1]})  # fmt: skip
        with torch.no_grad():
            losses.append(float(masked_loss("adding", model(x), y, mask)))
    assert final["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert final["length"] == 20 and len(set(arrays["length"])) > 5


def test_a_mixed_test_set_and_an_extra_length_at_the_run_s_t_are_both_tabled(datasets, tmp_path):  # noqa: F811
    """Section 4.1.1 at the paper's budget: T = 200, the test set mixed over 50..200 and 200 among the extra lengths.
    Both final evaluations carry length T; the lengths table keeps both (the trained one from the mixed set)."""
    path = tmp_path / "data" / "mixed.npz"
    tasks.generate_file(path, "adding", 20, 64, 2, "le", min_T=5)
    extra = datasets[("adding", 20, "test")]
    spec = make_spec(datasets, steps=4, test_data=str(path), test_lengths=[5, 20], eval_lengths=[20], eval_data=[extra])
    train(spec, tmp_path / "run")
    metrics = read_run(tmp_path / "run")["metrics"].query("step == 4")
    _, lengths = tables.read_run(tmp_path / "run", {"adding": 0.01})
    assert lengths[["length", "trained"]].values.tolist() == [[20, True], [20, False]]
    assert lengths.metric.tolist() == [metrics.query(f"split == '{s}'").metric.item() for s in ("test", "test_length")]


def test_an_evaluation_too_large_for_one_forward_is_chunked_with_the_same_numbers(datasets, tmp_path, monkeypatch):  # noqa: F811
    """At the paper's budget (10,000 sequences of 5,000 steps) one forward would hold 10 GB of states: above
    EVAL_CHUNK_CELLS the sequences go through in chunks, and every test row agrees with the single forward's."""
    from rnngrad import evaluation

    spec = make_spec(
        datasets,
        task="adding",
        T=5,
        steps=8,
        eval_every=4,
        eval_lengths=[20],
        eval_data=[datasets[("adding", 20, "test")]],
    )
    train(spec, tmp_path / "whole")
    x = tasks.load(spec["test_data"])[0]
    monkeypatch.setattr(evaluation, "EVAL_CHUNK_CELLS", 3 * x.shape[1] * spec["hidden"])  # 3 sequences a chunk
    calls = []
    model = torch.nn.Linear(x.shape[2], 2)
    chunked = evaluation.outputs_in_chunks(lambda chunk: calls.append(len(chunk)) or model(chunk), x, spec["hidden"])
    assert calls[:2] == [3, 3] and sum(calls) == len(x) and torch.allclose(chunked, model(x), rtol=0, atol=1e-6)
    train(spec, tmp_path / "chunked")
    whole, parts = (read_run(tmp_path / name)["metrics"].query("split != 'train'") for name in ("whole", "chunked"))
    assert len(whole) == 4 and whole.split.tolist() == parts.split.tolist()
    for column in ("loss", "metric"):
        assert parts[column].tolist() == pytest.approx(whole[column].tolist(), rel=1e-6)
    assert parts.seq_solved_frac.tolist() == whole.seq_solved_frac.tolist()
