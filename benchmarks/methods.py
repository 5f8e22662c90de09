"""Cost per training step of the papers' methods, and of the stacked path that trains them, measured in one run.

    PYTHONPATH=src python benchmarks/methods.py [--repeats 20] [--block 10] [--threads 1] [--tiny] [--out bench.json]
        [--stacked-repeats 20] [--profile-steps 10]

Every timing is this process's CPU time over a block of updates (steadier than wall time on a shared machine), the
arms of a measurement interleaved block by block (_machine.timed_blocks), the median block giving ms an update: the
ratios within a measurement come from one run under the same load; absolute times move with the machine's load.

``rows``: the methods on the sequential path. Each arm is a real run (rnngrad.run.Run.train_step on a spec expanded
from config/config.yaml) at two shapes, float32, tanh, orthogonal init, plain SGD (lr 0.01) clipped at 1:
  plain          the stored training set (the default: minibatches sampled from data.n_train sequences);
  regularizer    + Pascanu's Omega with alpha 2 (MSGD-CR): a second backward recursion and one [H, H] product;
  fresh_data     every minibatch generated from (seed, step) instead of sampled;
  mixed_lengths  fresh data with T drawn per minibatch from [T/2, 3T/2] (mean T, so the recurrence costs the same
                 on average).
train_until_solved and eval_lengths add nothing per step (a comparison at each evaluation; one test at the end).
Shapes: the default config's (adding, H=32, B=32, T=50) and Pascanu's Fig. 7 (temporal order, H=50, B=20, T=50).

``stacked``: a stacked group (rnngrad.batched.Group.step, groups.stack_methods on) against its arms' runs alone, at
the shapes of _spec.PAPER_SHAPES (Fig. 7's sparse init, input and readout scales, fresh data; the IRNN's identity
init and relu; the default config's Adam), each member a real run, until solved on with a criterion no member
meets where the paper trains until solved (so every member takes every update), no evaluation within the timing:
  fig7        Pascanu et al. 2013 Fig. 7: temporal order (variant pascanu), H=50, B=20, T=50, SGD lr 0.01, fresh
              data, until solved; 3 arms x 5 seeds = 15 members: MSGD (no clip, alpha 0), MSGD-C (norm clip 1,
              alpha 0), MSGD-CR (norm clip 1, Omega alpha 4);
  fig7_mixed  the same with mixed training lengths train_lengths [25, 50] (section 4.1.1's style: each member draws
              its T every update, the group pads every batch to 50, a member alone runs its own T);
  irnn        Le et al. 2015's IRNN as config/reproduce/le2015.yaml trains it: adding (variant le), H=100, B=16,
              T=100, relu, identity init scale 1, SGD lr 0.01, norm clip 1, stored training set, until solved; the
              config's 10 seeds;
  default     config/config.yaml's shape: adding, H=32, B=32, T=50, tanh, Adam lr 0.001, clip 1; 12 seeds.
Arms, interleaved: the group's update; each arm's seed-0 run alone on the sequential path (before_step, train_step,
end_step, as Run.run) and alone on the stacked path (a Group of 1); the group's draw alone (Stack.draw: the members'
batches, generated with fresh data); a 512x512 float32 matmul (_machine.matmul_gflops_step, the compute limit); at
fig7, Fig. 7's per-step recurrent product four ways (small_products: torch.baddbmm [15,20,50]x[15,50,50] on
contiguous tensors, the same on the stacked path's member blocks, the forward's in-place baddbmm_ on a time step's
slice of the states, and one member's addmm [20,50]x[50,50]), with the ATen ops each dispatches. Reported: ms a
group update, a member's (the group's over its members), alone (the arms' mean) on each path, the speed-up in
updates per second per run over each; FLOPs of an update (_spec.update_flops: matmuls only, the readout at every
step as rnngrad computes it, Omega's products where alpha > 0; at a mixed-length member's mean length 37.5, so the
group's padding counts as lost time); and each path's share of the compute limit: FLOPs / (seconds an update x the
matmul's FLOP/s measured in the same interleaving, one thread); for the group, the members' FLOPs summed over the
group update's time.

``fig7_profile``: --profile-steps updates of fig7's group under torch.profiler after its timing: the top ATen ops
by self time (ms a step), the ATen ops a step (nested ones included), the inclusive ms of the step's phases (the
stack's draw and update, batched.stacked_forward, stacked_backward, stacked_omega; rest: the members' Python
bookkeeping, the loss, the metrics and the norms), beside the unprofiled step: the profiler's per-op cost inflates
every op (wall time under the profiler, CPU time unprofiled).

--tiny: T=20 for ``rows``; _spec.TINY's H=8, B=4, T=10 (mixed lengths [10, 20]) for ``stacked``, the same members;
2 blocks of 2 updates, 1 profiled update: checks that it runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _machine import matmul_gflops_step, timed_blocks, write
from _spec import PAPER_SHAPES, TINY, default_config, one_run_spec, shape_spec, update_flops
from torch.profiler import ProfilerActivity, profile, record_function

from rnngrad import batched
from rnngrad.batched import Group, can_batch
from rnngrad.run import Run

SHAPES = {  # name: (task, H, B, T)
    "default": ("adding", 32, 32, 50),
    "pascanu": ("temporal_order", 50, 20, 50),
}
ARMS = {
    "plain": {},
    "regularizer": {"regularizer": 2.0},
    "fresh_data": {"fresh_data": True},
    "mixed_lengths": {"fresh_data": True, "train_lengths": "half_to_one_and_a_half_T"},
}


def arm_spec(shape: str, arm: str, T: int, root: Path) -> dict:  # noqa: N803 - the papers' name
    """The spec of one arm, expanded from the default config so that every key is the pipeline's own."""
    task, hidden, batch, _ = SHAPES[shape]
    settings = {key: value for key, value in ARMS[arm].items() if key != "regularizer"}
    if "train_lengths" in settings:
        settings["train_lengths"] = [T // 2, T + T // 2]
    train = {"hidden": hidden, "batch_size": batch, "optimizer": "sgd", "lr": 0.01, "steps": 10**6, **settings}
    grid = {"task": [task], "T": [T], "activation": ["tanh"], "init": ["orthogonal"], "scale": [1.0], "clip": [1.0],
            "regularizer": [ARMS[arm].get("regularizer", 0)], "seed": [0]}  # fmt: skip
    return {**one_run_spec(default_config(), grid, train, root, shape), "eval_every": 10**6}


def measure(shape: str, T: int, repeats: int, block: int, root: Path) -> dict:  # noqa: N803
    runs = {arm: Run(arm_spec(shape, arm, T, root), root / shape / arm) for arm in ARMS}

    def steps(run: Run) -> None:
        for _ in range(block):
            assert run.train_step(), "a benchmark step diverged"
            run.step += 1

    for run in runs.values():
        steps(run)  # warm-up
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(repeats):
        for arm, run in runs.items():
            start = time.process_time()
            steps(run)
            times[arm].append((time.process_time() - start) / block)
    ms = {arm: 1000 * statistics.median(values) for arm, values in times.items()}
    task, hidden, batch, _ = SHAPES[shape]
    row = {"shape": shape, "task": task, "H": hidden, "B": batch, "T": T}
    row |= {f"{arm}_ms": round(value, 4) for arm, value in ms.items()}
    return row | {f"{arm}_ratio": round(ms[arm] / ms["plain"], 3) for arm in ARMS if arm != "plain"}


FIG7_ARMS = {"MSGD": (None, 0.0), "MSGD-C": (1.0, 0.0), "MSGD-CR": (1.0, 4.0)}  # arm: (clip, alpha)
NEVER_SOLVED = {"criterion": "errors", "max_errors": 0.0}  # an error rate below 0: no member meets it
# name: (shape of _spec.PAPER_SHAPES, {arm: (grid changes, members)}, train changes, until solved)
STACKED = {
    "fig7": ("pascanu", {arm: ({"clip": clip, "regularizer": alpha}, 5) for arm, (clip, alpha) in FIG7_ARMS.items()},
             {}, True),
    "fig7_mixed": ("pascanu", {arm: ({"clip": clip, "regularizer": alpha}, 5)
                               for arm, (clip, alpha) in FIG7_ARMS.items()}, {"train_lengths": "half_to_T"}, True),
    "irnn": ("irnn", {"IRNN": ({}, 10)}, {}, True),
    "default": ("default", {"default": ({}, 12)}, {}, False),
}  # fmt: skip
SMALL_BMM = (15, 20, 50)  # K, B, H: Fig. 7's group's per-step recurrent product, [K, B, H] x [K, H, H]
SMALL_CALLS = 50  # small products in one timed call (a block of single ones is too short to time)


def stacked_spec(name: str, arm: str, seed: int, root: Path, tiny: bool) -> dict:
    """A member's spec: the shape's, the arm's changes, stack_methods on, and until solved on with a criterion no
    member meets where the configuration trains until solved (so that every member takes every step)."""
    shape, arms, train, until_solved = STACKED[name]
    grid, _ = arms[arm]
    train = dict(train)
    if train.get("train_lengths") == "half_to_T":  # tiny: [T, 2T] (temporal order's T is at least 10)
        T = PAPER_SHAPES[shape]["grid"]["T"]  # noqa: N806
        train["train_lengths"] = [TINY["T"], 2 * TINY["T"]] if tiny else [T // 2, T]
        train["fresh_data"] = True
    spec = shape_spec(shape, seed, root, tiny, grid=grid, train={**train, "until_solved": until_solved})
    spec = {**spec, "stack_methods": True, "run_id": f"{name}/{arm}/seed{seed}"}
    if until_solved:
        spec["until_solved"] = NEVER_SOLVED
    return spec


def started(spec: dict, out_dir: Path) -> Run:
    """A run started in ``out_dir``, its progress lines (step 0's evaluation) not printed."""
    run = Run(spec, out_dir)
    run.progress = lambda message: None
    run.out_dir.mkdir(parents=True, exist_ok=True)
    run.start()
    return run


def sequential_step(run: Run):
    """One update of a run alone on the sequential path, as Run.run takes it."""

    def step() -> None:
        run.before_step()
        assert run.end_step(run.train_step()), "a benchmark step diverged"

    return step


def small_products(tiny: bool) -> dict:
    """The per-step recurrent product of Fig. 7's group (K, B, H = SMALL_BMM) four ways, each a call doing
    SMALL_CALLS of them: ``small_baddbmm`` torch.baddbmm([K, B, H] + [K, B, H] x [K, H, H]) on contiguous tensors
    into a preallocated result; ``small_baddbmm_blocks`` the same on tensors laid out as the stacked path's
    (batched.member_blocks: each member's block padded to 64 bytes); ``small_baddbmm_slice`` the stacked forward's
    own call, a_t.baddbmm_(h, W^T) in place on a time step's slice of the [K, T, B, H] states (as
    batched.stacked_forward); and ``small_addmm`` one member's torch.addmm([B, H] + [B, H] x [H, H]), a lone run's
    product. Returns name -> (call, FLOPs of a call, shapes, one product alone)."""
    k, b, h = (2, TINY["batch_size"], TINY["hidden"]) if tiny else SMALL_BMM
    steps = TINY["T"] if tiny else PAPER_SHAPES["pascanu"]["grid"]["T"]
    like = torch.empty(0)
    x, w, c, out = torch.randn(k, b, h), torch.randn(k, h, h), torch.randn(k, b, h), torch.empty(k, b, h)
    xb, cb, outb = (batched.aligned(t) for t in (x, c, out))
    wb = batched.aligned(w)
    states = batched.member_blocks(k, (steps, b, h), like).normal_()
    wb_t = wb.transpose(1, 2)
    x1, w1, c1, out1 = (t[0].clone() for t in (x, w, c, out))
    clock = {"t": 0}

    def in_place() -> None:
        clock["t"] = (clock["t"] + 1) % steps
        states[:, clock["t"]].baddbmm_(xb, wb_t)

    stacked = f"[{k},{b},{h}]x[{k},{h},{h}]"
    products = {
        "small_baddbmm": (lambda: torch.baddbmm(c, x, w, out=out), k, f"{stacked}, contiguous"),
        "small_baddbmm_blocks": (lambda: torch.baddbmm(cb, xb, wb, out=outb), k, f"{stacked}, member blocks"),
        "small_baddbmm_slice": (in_place, k, f"{stacked} into [{k},{steps},{b},{h}][:, t]"),
        "small_addmm": (lambda: torch.addmm(c1, x1, w1, out=out1), 1, f"[{b},{h}]x[{h},{h}]"),
    }

    def repeated(once):
        def call() -> None:
            for _ in range(SMALL_CALLS):
                once()

        return call

    return {name: (repeated(once), 2 * n * b * h * h * SMALL_CALLS, label, once)
            for name, (once, n, label) in products.items()}  # fmt: skip


def aten_ops_per_call(fn, calls: int = 10) -> float:
    """ATen ops dispatched per call of ``fn``, counted with the torch profiler (nested ones included, as
    benchmarks/groups.py counts them)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    return sum(event.count for event in prof.key_averages() if event.key.startswith("aten::")) / calls


def measure_stacked(name: str, repeats: int, block: int, root: Path, tiny: bool) -> tuple[dict, Group]:
    """One configuration of STACKED: its group against each arm's seed-0 run alone on the sequential path and
    alone on the stacked path (a group of 1), and the large matmul, blocks interleaved (module docstring)."""
    shape, arms, train, _ = STACKED[name]
    specs = {
        (arm, seed): stacked_spec(name, arm, seed, root, tiny) for arm, (_, n) in arms.items() for seed in range(n)
    }
    assert can_batch(list(specs.values())), f"{name}: the group must take the stacked path"
    members = [started(spec, root / name / "group" / spec["run_id"]) for spec in specs.values()]
    group = Group(members)
    sequential = {arm: started(specs[(arm, 0)], root / name / "sequential" / arm) for arm in arms}
    lone = {arm: Group([started(specs[(arm, 0)], root / name / "stacked1" / arm)]) for arm in arms}
    mm_step, mm_flops = matmul_gflops_step()
    calls = {"matmul": mm_step, "group": group.step}
    calls |= {f"sequential/{arm}": sequential_step(run) for arm, run in sequential.items()}
    calls |= {f"stacked1/{arm}": one.step for arm, one in lone.items()}
    small = small_products(tiny) if name == "fig7" else {}
    calls |= {key: fn for key, (fn, _, _, _) in small.items()}
    calls["draw"] = group.stack.draw  # the members' batches alone (fresh data: generated)
    seconds = timed_blocks(calls, repeats, block)
    assert len(group.active) == len(members) and all(one.active for one in lone.values()), "a member left"
    gflops = mm_flops / seconds["matmul"] / 1e9
    spec = specs[(next(iter(arms)), 0)]
    lengths = spec["train_lengths"]
    mean_T = (lengths[0] + lengths[1]) / 2 if lengths else spec["T"]  # noqa: N806 - a member's mean length
    work = {arm: update_flops(specs[(arm, 0)], T=mean_T) for arm in arms}  # FLOPs of an arm's update
    group_work = sum(work[arm] for arm, _ in specs)
    ms = {key: 1000 * value for key, value in seconds.items()}
    member_ms = ms["group"] / len(members)
    sequential_ms = statistics.mean(ms[f"sequential/{arm}"] for arm in arms)
    stacked1_ms = statistics.mean(ms[f"stacked1/{arm}"] for arm in arms)
    alone_work = statistics.mean(work.values())

    def pct(flops: float, milliseconds: float) -> float:
        """Per cent of the large matmul's rate that ``flops`` in ``milliseconds`` reach."""
        return round(100 * flops / (milliseconds / 1000) / (gflops * 1e9), 3)

    row = {
        "name": name, "shape": shape, "task": spec["task"], "H": spec["hidden"], "B": spec["batch_size"],
        "T": spec["T"], "train_lengths": lengths, "activation": spec["activation"], "optimizer": spec["optimizer"],
        "fresh_data": spec["fresh_data"], "until_solved": spec["until_solved"] is not None,
        "arms": {arm: {"members": n, "clip": specs[(arm, 0)]["clip"], "alpha": specs[(arm, 0)]["regularizer"]}
                 for arm, (_, n) in arms.items()},
        "members": len(members), "group_ms": round(ms["group"], 4), "member_ms": round(member_ms, 4),
        "group_draw_ms": round(ms["draw"], 4),
        "alone_ms": round(sequential_ms, 4), "alone_stacked_ms": round(stacked1_ms, 4),
        "sequential_ms": {arm: round(ms[f"sequential/{arm}"], 4) for arm in arms},
        "stacked1_ms": {arm: round(ms[f"stacked1/{arm}"], 4) for arm in arms},
        "speedup": round(sequential_ms / member_ms, 3), "speedup_vs_stacked1": round(stacked1_ms / member_ms, 3),
        "flops_length": mean_T, "flops_per_update": {arm: round(value) for arm, value in work.items()},
        "mean_flops_per_update": round(alone_work), "matmul_gflops": round(gflops, 2),
        "compute_limit_pct": {"group": pct(group_work, ms["group"]), "sequential": pct(alone_work, sequential_ms),
                              "stacked1": pct(alone_work, stacked1_ms)},
    }  # fmt: skip
    if small:
        row["small_products"] = {
            key: {"shape": label, "us_per_call": round(1e6 * seconds[key] / SMALL_CALLS, 3),
                  "gflops": round(flops / seconds[key] / 1e9, 2), "aten_ops_per_call": aten_ops_per_call(once)}
            for key, (_, flops, label, once) in small.items()
        }  # fmt: skip
    return row, group


PHASES = {"draw": "the members' batches (fresh data: generated)", "forward": "stacked_forward",
          "backward": "stacked_backward", "omega": "stacked_omega", "update": "clipping and SGD"}  # fmt: skip


def profile_group(group: Group, steps: int, step_ms: float, top: int = 12) -> dict:
    """CPU time by op of ``steps`` updates of a stacked group under torch.profiler: the top ops by self CPU time
    (ms a step, nested ATen ops counted once, at the innermost), the named phases' inclusive ms a step (PHASES:
    the stack's draw and update, the forward, backward and Omega functions; what is left is the members' Python
    bookkeeping, the loss, the metrics and the norms), and the ATen ops dispatched a step (nested ones included,
    as benchmarks/groups.py counts them)."""
    stack = group.stack

    def labelled(fn, label):
        def call(*args, **kwargs):
            with record_function(label):
                return fn(*args, **kwargs)

        return call

    saved = {key: getattr(batched, f"stacked_{key}") for key in ("forward", "backward", "omega")}
    stack.draw, stack.update = labelled(stack.draw, "phase:draw"), labelled(stack.update, "phase:update")
    for key, fn in saved.items():
        setattr(batched, f"stacked_{key}", labelled(fn, f"phase:{key}"))
    try:
        group.step()  # warm-up under the patches
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                with record_function("phase:step"):
                    group.step()
    finally:
        for key, fn in saved.items():
            setattr(batched, f"stacked_{key}", fn)
        del stack.draw, stack.update
    events = prof.key_averages()
    ranges = {
        e.key.removeprefix("phase:"): e.cpu_time_total / 1000 / steps for e in events if e.key.startswith("phase:")
    }
    aten = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
    profiled_ms = ranges.pop("step")
    return {
        "steps": steps, "unprofiled_step_ms": round(step_ms, 3), "profiled_step_ms": round(profiled_ms, 3),
        "aten_ops_per_step": round(sum(e.count for e in aten) / steps),
        "aten_self_ms_per_step": round(sum(e.self_cpu_time_total for e in aten) / 1000 / steps, 3),
        "top_ops": [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 3),
                     "calls_per_step": round(e.count / steps, 1),
                     "share": round(e.self_cpu_time_total / 1000 / steps / profiled_ms, 3)} for e in aten[:top]],
        "phases_ms_per_step": {key: round(ranges.get(key, 0.0), 3) for key in PHASES}
        | {"rest": round(profiled_ms - sum(ranges.get(key, 0.0) for key in PHASES), 3)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed blocks per arm and shape")
    parser.add_argument("--block", type=int, default=10, help="steps in a timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="T=20 (stacked: _spec.TINY), 2 blocks of 2 steps")
    parser.add_argument("--stacked-repeats", type=int, default=20, help="timed blocks of each stacked configuration")
    parser.add_argument("--profile-steps", type=int, default=10, help="profiled updates of Fig. 7's group")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, block = (2, 2) if args.tiny else (args.repeats, args.block)
    stacked_repeats, profile_steps = (2, 1) if args.tiny else (args.stacked_repeats, args.profile_steps)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(shape, 20 if args.tiny else SHAPES[shape][3], repeats, block, Path(tmp)) for shape in SHAPES]
        stacked, groups = {}, {}
        for name in STACKED:
            stacked[name], groups[name] = measure_stacked(name, stacked_repeats, block, Path(tmp), args.tiny)
        profiled = profile_group(groups["fig7"], profile_steps, stacked["fig7"]["group_ms"])
    record = {"benchmark": "methods", "repeats": repeats, "block": block, "rows": rows}
    write(args.out, record | {"stacked_repeats": stacked_repeats, "stacked": list(stacked.values()),
                              "fig7_profile": profiled})  # fmt: skip


if __name__ == "__main__":
    main()
