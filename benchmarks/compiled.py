"""Candidates that take a training update's time loop out of Python dispatch, side by side in one run.

    PYTHONPATH=src python benchmarks/compiled.py [--repeats 15] [--block 10] [--k 15] [--tiny] [--out FILE]

At three shapes, each a real run's spec expanded from config/config.yaml (fresh data, methods as named):
  pascanu  Pascanu et al. 2013 Fig. 7: temporal order, H=50, B=20, T=50, tanh, sparse init 0.95, input and readout
           weights N(0, 0.01^2), fresh data each step, SGD lr 0.01, norm clipping at 1, Omega with alpha 4;
  irnn     Le et al. 2015's IRNN: adding, H=100, B=16, T=100, relu, identity init, input weights N(0, 0.001^2),
           SGD lr 0.01, clip 1, no regulariser (stored training set);
  default  config/config.yaml's: adding, H=32, B=32, T=50, tanh, orthogonal 1, Adam lr 0.001 (the default
           optimizer), clip 1 (one of its baselines' arms), stored training set.
Candidates, each computing the same update (benchmarks/_kernels.py: forward, readout at the last step, loss, explicit
BPTT backward, Omega's gradient, norm clipping, SGD or Adam):
  reference      rnngrad.run.Run.train_step (draws its batch: fresh data or a sample of the stored set);
  draw           Run.draw_batch alone (the data part of the reference step; the candidates below are timed on
                 batches drawn beforehand, so add this to compare end to end);
  batched        rnngrad.batched.Group.step for --k runs, in the setting the stacked path accepted when
                 compiled.json was measured: the nearest multiple of 4 units, no Omega, a stored training set, with
                 reference_as_batched (Run.train_step in that setting) beside it (the stacked path now takes every
                 method at any hidden size: benchmarks/methods.py measures it so);
  torch_eager    the update as one torch function over a member axis (_kernels.torch_update), eager;
  torch_compile  that function through torch.compile (inductor, CPU C++ kernels), one graph per shape and K;
  numba          @njit of the whole update as loops over float32 arrays, members looped inside (skipped without
                 numba);
  cpp            the same loops in C++ through torch.utils.cpp_extension.load_inline, -O3 -march=native (skipped
                 without a C++ compiler or ninja);
  cpp_aten       torch_update's ops called from C++ in the same extension (ATen's kernels, MKL's GEMM, the
                 dispatcher, no Python between the ops).
Each is timed for one run (K = 1) and for a group of --k runs (K members, each its own parameters and batch), as
CPU time of this process over blocks of updates, candidates interleaved, median block, one thread. Reported: updates/s
of one run, per-run updates/s in the group, the first call's time (compile or JIT, once per shape and K; the C++
build once), the share of the compute limit (matmul FLOPs of the update times updates/s, over a 512x512 float32
torch matmul's GFLOP/s measured in the same run), and agreement: the largest relative difference (max |p - p_ref| /
max |p_ref| over each parameter) of every candidate's parameters after 5 updates from the reference's initial
parameters on the reference's own batches, one run and the group. Start-up: a fresh process's time to its first
update (imports, compile or cache load) for torch_compile, numba and cpp, with an empty cache and again with the
cache the first left (TORCHINDUCTOR_CACHE_DIR, NUMBA_CACHE_DIR, the extension's build folder), wall and CPU.
--tiny: small shapes (pascanu and default at H=8, B=4, T=10, K=2), 2 blocks of 2 updates, no start-up processes,
compile caches kept between runs in the temporary folder (the full run compiles cold): checks that it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _kernels import BETA1, BETA2, CPP, loop_update, torch_update
from _machine import matmul_gflops_step, timed_blocks, write
from _spec import PAPER_SHAPES as SHAPES
from _spec import TINY, shape_spec, update_flops

from rnngrad.batched import Group
from rnngrad.run import Run

CHECK_STEPS = 5
NAMES = ("W", "U", "b", "V", "c")


# ---------------------------------------------------------------------------------------------- specs and runs
def make_spec(shape: str, seed: int, root: Path, tiny: bool, batched: bool = False) -> dict:
    """A run's spec at a shape of _spec.PAPER_SHAPES; ``batched``: the setting rnngrad.batched accepted when
    compiled.json was measured (hidden a multiple of 4, no Omega, a stored training set), kept so that the batched
    candidate stays comparable with that record."""
    if not batched:
        return shape_spec(shape, seed, root, tiny)
    hidden = TINY["hidden"] if tiny else SHAPES[shape]["train"]["hidden"]
    train = {"fresh_data": False, "hidden": 4 * round(hidden / 4)}
    return shape_spec(shape, seed, root, tiny, grid={"regularizer": 0}, train=train)


def recording(run: Run) -> list:
    """Make ``run`` keep every batch it draws; returns the list they are appended to."""
    drawn, draw = [], run.draw_batch

    def keep():
        batch = draw()
        drawn.append(batch)
        return batch

    run.draw_batch = keep
    return drawn


def params_of(run: Run) -> list[torch.Tensor]:
    return [getattr(run.model, name).detach().clone() for name in NAMES]


def as_inputs(batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [T, B, D] step-major, y [B]: the target at the last step) from a run's batch; only last-step losses."""
    x, y, mask = batch
    if not (mask[:, -1].all() and not mask[:, :-1].any()):
        raise ValueError("the kernels score the last step only")
    return x.transpose(0, 1).contiguous(), y[:, -1].float()


def stacked_batches(batches: list[list[tuple]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per member lists of batches -> per update (x [K, T, B, D], y [K, B])."""
    out = []
    for member_batches in zip(*batches, strict=True):
        pairs = [as_inputs(batch) for batch in member_batches]
        out.append((torch.stack([p[0] for p in pairs]).contiguous(), torch.stack([p[1] for p in pairs]).contiguous()))
    return out


# ---------------------------------------------------------------------------------------------- candidates
class Candidate:
    """K runs' parameters (and Adam moments) stepped by one implementation; step(x, y) does one update."""

    def __init__(self, spec: dict, inits: list[list[torch.Tensor]]):
        self.params = [torch.stack([init[i] for init in inits]).contiguous() for i in range(5)]
        self.moments = [torch.zeros_like(p) for p in self.params * 2] if spec["optimizer"] == "adam" else []
        self.adam = spec["optimizer"] == "adam"
        self.t = 0
        self.kw = {"ce": spec["task"] == "temporal_order", "relu": spec["activation"] == "relu",
                   "alpha": float(spec["regularizer"] or 0.0), "clip": float(spec["clip"] or math.inf),
                   "adam": self.adam, "lr": float(spec["lr"])}  # fmt: skip

    def scalars(self) -> tuple[float, float]:
        self.t += 1
        if not self.adam:
            return 0.0, 1.0
        return self.kw["lr"] / (1 - BETA1**self.t), (1 - BETA2**self.t) ** 0.5

    def member(self, k: int) -> list[torch.Tensor]:
        return [p[k] for p in self.params]


class TorchCandidate(Candidate):
    def __init__(self, spec, inits, fn):
        super().__init__(spec, inits)
        self.fn = fn

    def step(self, x, y):
        step_size, correction = self.scalars()
        self.params, self.moments, numbers = self.fn(self.params, self.moments, x, y, **self.kw,
                                                     step_size=torch.tensor(step_size),
                                                     correction=torch.tensor(correction))  # fmt: skip
        return numbers


class NumbaCandidate(Candidate):
    def __init__(self, spec, inits, kernel):
        super().__init__(spec, inits)
        self.kernel = kernel
        self.arrays = [p.numpy() for p in self.params]  # views: the kernel updates self.params in place
        # SGD: Adam's moments are never touched, but the kernel's signature has them
        self.moment_arrays = [m.numpy() for m in self.moments or [torch.zeros_like(p) for p in self.params * 2]]
        self.out = None

    def step(self, x, y):
        step_size, correction = self.scalars()
        x_np = x.numpy()
        if self.out is None or self.out.shape[0] != x_np.shape[0]:
            import numpy as np

            self.out = np.zeros((x_np.shape[0], 3))
        kw = self.kw
        self.kernel(*self.arrays, *self.moment_arrays, x_np, y.numpy(), self.out, kw["ce"], kw["relu"], kw["alpha"],
                    kw["clip"], kw["adam"], kw["lr"], step_size, correction)  # fmt: skip
        return self.out


class CppCandidate(Candidate):
    def __init__(self, spec, inits, module, function="group_update"):
        super().__init__(spec, inits)
        self.function = getattr(module, function)

    def step(self, x, y):
        step_size, correction = self.scalars()
        kw = self.kw
        firsts, seconds = (self.moments[:5], self.moments[5:]) if self.adam else ([], [])
        return self.function(self.params, firsts, seconds, x, y, kw["ce"], kw["relu"], kw["alpha"],
                                        kw["clip"], kw["adam"], kw["lr"], step_size, correction)  # fmt: skip


def numba_kernel(cache: bool = False):
    """loop_update compiled by numba (and its helper), or None with the reason when numba is missing."""
    try:
        import numba
    except ImportError as err:
        return None, f"numba not installed ({err}); `pip install numba` adds it"
    import _kernels

    _kernels._apply = numba.njit(cache=cache)(_kernels._apply)
    return numba.njit(cache=cache)(loop_update), None


def cpp_module(build_dir: Path):
    """The C++ kernel built by load_inline into build_dir, or None with the reason."""
    missing = [tool for tool in ("g++", "ninja") if shutil.which(tool) is None]
    if missing:
        return None, f"{' and '.join(missing)} not found: torch.utils.cpp_extension.load_inline needs both"
    from torch.utils.cpp_extension import load_inline

    build_dir.mkdir(parents=True, exist_ok=True)
    module = load_inline(name="rnngrad_bench_update", cpp_sources=[CPP], functions=["group_update", "aten_update"],
                         extra_cflags=["-O3", "-march=native"], build_directory=str(build_dir),
                         verbose=False)  # fmt: skip
    return module, None


# ---------------------------------------------------------------------------------------------- measuring
def flops(spec: dict) -> int:
    """Matmul FLOPs of one update as the kernels compute it (_spec.update_flops: the readout at the last step only,
    Omega's carries reused from the backward)."""
    return update_flops(spec, readout_steps=1, omega_carries=False)


def max_rel(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(float((g - w).abs().max() / w.abs().max().clamp(min=1e-30)) for g, w in zip(got, want, strict=True))


def first_call(candidate: Candidate, x, y) -> float:
    """Wall seconds of the first update (compile or JIT included); the state is restored afterwards."""
    params = [p.clone() for p in candidate.params]
    moments = [m.clone() for m in candidate.moments]
    start = time.perf_counter()
    candidate.step(x, y)
    seconds = time.perf_counter() - start
    for p, saved in zip(candidate.params, params, strict=True):
        p.copy_(saved)
    for m, saved in zip(candidate.moments, moments, strict=True):
        m.copy_(saved)
    candidate.t = 0
    return seconds


def cycler(candidate: Candidate, batches: list):
    state = {"i": 0}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        candidate.step(x, y)

    return step


def measure(shape: str, args, root: Path, available: dict) -> dict:
    k = args.k
    specs = [make_spec(shape, seed, root, args.tiny) for seed in range(k)]
    runs = [Run(spec, root / shape / f"ref{seed}") for seed, spec in enumerate(specs)]
    inits = [params_of(run) for run in runs]
    drawn = [recording(run) for run in runs]
    for run in runs:  # the reference: CHECK_STEPS updates of each run, keeping their batches
        for _ in range(CHECK_STEPS):
            assert run.train_step(), "a reference step diverged"
            run.step += 1
    finals = [params_of(run) for run in runs]
    one_batches = stacked_batches([drawn[0]])
    group_batches = stacked_batches(drawn)
    spec = specs[0]
    row = {"shape": shape, "task": spec["task"], "H": spec["hidden"], "B": spec["batch_size"], "T": spec["T"],
           "activation": spec["activation"], "optimizer": spec["optimizer"], "regularizer": spec["regularizer"],
           "fresh_data": spec["fresh_data"], "K": k, "flops_per_update": flops(spec)}  # fmt: skip
    # the candidates: factories of (one run, group) pairs
    makers = {"torch_eager": lambda inits_: TorchCandidate(spec, inits_, torch_update)}
    makers["torch_compile"] = lambda inits_: TorchCandidate(spec, inits_, torch.compile(torch_update, dynamic=False))
    if available["numba"][0] is not None:
        makers["numba"] = lambda inits_: NumbaCandidate(spec, inits_, available["numba"][0])
    if available["cpp"][0] is not None:
        makers["cpp"] = lambda inits_: CppCandidate(spec, inits_, available["cpp"][0])
        makers["cpp_aten"] = lambda inits_: CppCandidate(spec, inits_, available["cpp"][0], "aten_update")
    candidates, results = {}, {}
    for name, make in makers.items():
        one, group = make(inits[:1]), make(inits)
        first = {"one": first_call(one, *one_batches[0]), "group": first_call(group, *group_batches[0])}
        for x, y in one_batches:
            one.step(x, y)
        for x, y in group_batches:
            group.step(x, y)
        agree_one = max_rel(one.member(0), finals[0])
        agree_group = max(max_rel(group.member(m), finals[m]) for m in range(k))
        candidates[name] = (one, group)
        results[name] = {"first_call_s": {key: round(value, 3) for key, value in first.items()},
                         "agreement_one": agree_one, "agreement_group": agree_group}  # fmt: skip
    # rnngrad.batched in the setting it accepts, and one run in that setting beside it
    batched_specs = [make_spec(shape, seed, root, args.tiny, batched=True) for seed in range(k)]
    batched_runs = [Run(s, root / shape / f"batched{seed}") for seed, s in enumerate(batched_specs)]
    for run in batched_runs:
        run.start()
    group = Group(batched_runs)
    lone = Run(batched_specs[0], root / shape / "lone")
    mm_step, mm_flops = matmul_gflops_step()

    def ref_step(run: Run):
        def step():
            assert run.train_step(), "a reference step diverged"
            run.step += 1

        return step

    draw_run = runs[0]
    arms = {"matmul": mm_step, "reference": ref_step(runs[0]), "draw": lambda: draw_run.draw_batch(),
            "batched_group": group.step, "reference_as_batched": ref_step(lone)}  # fmt: skip
    for name, (one, grp) in candidates.items():
        arms[f"{name}_one"] = cycler(one, one_batches)
        arms[f"{name}_group"] = cycler(grp, group_batches)
    seconds = timed_blocks(arms, args.repeats, args.block)
    gflops = mm_flops / seconds["matmul"] / 1e9
    row["matmul_gflops"] = round(gflops, 2)
    work = row["flops_per_update"]

    def share(updates_per_s: float) -> float:
        return round(100 * work * updates_per_s / (gflops * 1e9), 3)

    row["draw_ms"] = round(1000 * seconds["draw"], 4)
    batched_hidden = batched_specs[0]["hidden"]
    changed = [
        f"H = {batched_hidden}" if batched_hidden != spec["hidden"] else "",
        "no regulariser" if spec["regularizer"] else "",
        "stored training set" if spec["fresh_data"] else "",
    ]
    row["batched_setting"] = ", ".join(part for part in changed if part) or "as the reference"  # fmt: skip
    reference = 1 / seconds["reference"]
    cells = {"reference": {"one_updates_per_s": round(reference, 1), "group_per_run_updates_per_s": round(reference, 1),
                           "first_call_s": None, "compute_share_pct": share(reference), "agreement_one": 0.0,
                           "agreement_group": 0.0}}  # fmt: skip
    lone_rate, group_rate = 1 / seconds["reference_as_batched"], k / seconds["batched_group"]
    cells["batched"] = {"one_updates_per_s": round(lone_rate, 1), "group_per_run_updates_per_s": round(group_rate, 1),
                        "first_call_s": None, "compute_share_pct": None, "agreement_one": None,
                        "agreement_group": None, "setting": row["batched_setting"],
                        "group_over_one_run": round(group_rate / lone_rate, 2)}  # fmt: skip
    for name, result in results.items():
        one_rate, grp_rate = 1 / seconds[f"{name}_one"], k / seconds[f"{name}_group"]
        cells[name] = {"one_updates_per_s": round(one_rate, 1), "group_per_run_updates_per_s": round(grp_rate, 1),
                       "first_call_s": result["first_call_s"], "compute_share_pct": share(one_rate),
                       "group_compute_share_pct": share(grp_rate),
                       "agreement_one": float(f"{result['agreement_one']:.3g}"),
                       "agreement_group": float(f"{result['agreement_group']:.3g}"),
                       "one_over_reference": round(one_rate / reference, 2)}  # fmt: skip
    row["candidates"] = cells
    row["skipped"] = {name: reason for name, (value, reason) in available.items() if value is None}
    return row


# ---------------------------------------------------------------------------------------------- start-up
def startup_child(candidate: str, cache: str) -> None:
    """In a fresh process: imports, build, one update at the pascanu shape; prints the seconds of each part."""
    start = time.perf_counter()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec("pascanu", 0, Path(tmp), tiny=False)
        run = Run(spec, Path(tmp) / "run")
        x, y = stacked_batches([[run.draw_batch()]])[0]
        ready = time.perf_counter()
        if candidate == "torch_compile":
            cand = TorchCandidate(spec, [params_of(run)], torch.compile(torch_update, dynamic=False))
        elif candidate == "numba":
            kernel, reason = numba_kernel(cache=True)
            cand = NumbaCandidate(spec, [params_of(run)], kernel)
        else:
            module, reason = cpp_module(Path(cache))
            cand = CppCandidate(spec, [params_of(run)], module)
        cand.step(x, y)
    done = time.perf_counter()
    print(json.dumps({"imports_and_data_s": ready - start, "first_update_s": done - ready, "total_s": done - start}))


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startups(available: dict) -> dict:
    """Each compiled candidate's fresh-process start, with an empty cache and then with the cache it left."""
    out = {}
    for candidate in ("torch_compile", "numba", "cpp"):
        if candidate != "torch_compile" and available[candidate][0] is None:
            continue
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(Path(cache) / "inductor"),
                   "NUMBA_CACHE_DIR": str(Path(cache) / "numba"),
                   "PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # fmt: skip
            rows = {}
            for label in ("cold", "warm"):
                cpu, wall = child_cpu(), time.perf_counter()
                done = subprocess.run([sys.executable, __file__, "--startup", candidate, "--cache",
                                       str(Path(cache) / "cpp")], env=env, capture_output=True, text=True,
                                      check=True)  # fmt: skip
                parts = json.loads(done.stdout.strip().splitlines()[-1])
                rows[label] = {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(child_cpu() - cpu, 2),
                               "first_update_s": round(parts["first_update_s"], 2),
                               "imports_and_data_s": round(parts["imports_and_data_s"], 2)}  # fmt: skip
            out[candidate] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="timed blocks per candidate and shape")
    parser.add_argument("--block", type=int, default=10, help="updates in a timed block")
    parser.add_argument("--k", type=int, default=15, help="runs in a group")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--tiny", action="store_true", help="small shapes, 2 blocks of 2 updates: checks that it runs")
    parser.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up measurement")
    parser.add_argument("--startup", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    if args.startup:
        startup_child(args.startup, args.cache)
        return
    torch.set_num_threads(1)
    if args.tiny:
        args.repeats, args.block, args.k, args.shapes = 2, 2, 2, ["pascanu", "default"]
    with tempfile.TemporaryDirectory() as tmp:
        # The full run compiles cold (fresh caches); --tiny keeps inductor's and the extension's caches between runs
        # (tempdir/rnngrad-bench-*), so that the test suite pays each compile once per machine.
        caches = Path(tempfile.gettempdir()) if args.tiny else Path(tmp)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(caches / "rnngrad-bench-inductor"))
        start = time.perf_counter()
        numba_fn, numba_reason = numba_kernel(cache=False)
        cpp_start = time.perf_counter()
        cpp, cpp_reason = cpp_module(caches / "rnngrad-bench-cpp")
        build = {"cpp_build_s": round(time.perf_counter() - cpp_start, 2) if cpp else None,
                 "numba_import_s": round(cpp_start - start, 2) if numba_fn else None}  # fmt: skip
        available = {"numba": (numba_fn, numba_reason), "cpp": (cpp, cpp_reason)}
        for name, (value, reason) in available.items():
            if value is None:
                print(f"benchmarks/compiled.py: skipping {name}: {reason}", file=sys.stderr)
        rows = [measure(shape, args, Path(tmp), available) for shape in args.shapes]
    start_up = {} if args.tiny or args.no_startup else startups(available)
    versions = {"numba": None, "llvmlite": None, "ninja": shutil.which("ninja"), "gxx": shutil.which("g++")}
    if numba_fn is not None:
        import llvmlite
        import numba

        versions.update(numba=numba.__version__, llvmlite=llvmlite.__version__)
    write(args.out, {"benchmark": "compiled", "repeats": args.repeats, "block": args.block, "k": args.k,
                     "check_steps": CHECK_STEPS, "versions": versions, **build, "startup": start_up,
                     "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
