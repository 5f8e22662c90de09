"""Cost of Pascanu et al. 2013's regulariser: one training step with Omega against one without, in one run.

    PYTHONPATH=src python benchmarks/regularizer.py [--repeats 30] [--threads 1] [--tiny] [--out bench.json]

A plain step is train.Run.train_step's with SGD (lr 0.01) and clipping at 1, Pascanu's MSGD-C: forward, loss,
backward, total gradient norm, clip, update. The step with Omega (MSGD-CR) keeps the readout's gradient of the
states, runs rnngrad.regularizer.omega (its own backward recursion and one [H, H] product) and adds
alpha dOmega/dW (alpha 2) to W's gradient before the norm is taken. Shapes, float32: the default config's
(adding, H=32, B=32, T=50) and Pascanu's Fig. 7 (temporal order, H=50, B=20, T=50). Each timing is the CPU time of
this process over a block of steps (robust on a shared machine), the two kinds interleaved; the median block
gives ms a step. --tiny: T=10 and 2 repeats of 2 steps, to check that the script runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from rnngrad import tasks
from rnngrad.losses import masked_loss
from rnngrad.models import VanillaRNN
from rnngrad.optim import Optimizer
from rnngrad.regularizer import omega

SHAPES = {  # name: (task, variant, H, B, T)
    "default": ("adding", "le", 32, 32, 50),
    "pascanu": ("temporal_order", "pascanu", 50, 20, 50),
}
ALPHA, CLIP, LR = 2.0, 1.0, 0.01


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_step(task: str, model: VanillaRNN, batch: tuple, regularised: bool):
    x, y, mask = batch
    params = list(model.parameters())
    optimizer = Optimizer("sgd", params, lr=LR)

    def step() -> None:
        optimizer.zero_grad()
        if regularised:
            states = model.states(x)
            states.retain_grad()
            masked_loss(task, states @ model.V.T + model.c, y, mask).backward()
            _, grad_w = omega(model.W, states.detach(), states.grad, model.act.name)
            model.W.grad.add_(grad_w, alpha=ALPHA)
        else:
            masked_loss(task, model(x), y, mask).backward()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        if norm > CLIP:
            for p in params:
                p.grad.mul_(CLIP / norm)
        optimizer.step()

    return step


def measure(name: str, steps: int | None, repeats: int, block: int) -> dict:
    task, variant, hidden, batch_size, T = SHAPES[name]  # noqa: N806 - the papers' name
    T = steps or T  # noqa: N806
    x, y, mask = tasks.get(task).to_model(tasks.generate(task, T, batch_size, 0, variant))
    model = VanillaRNN(x.shape[-1], hidden, tasks.n_outputs(task), "tanh", "orthogonal", 1.0, seed=0)
    fns = {kind: make_step(task, model, (x, y, mask), kind == "omega") for kind in ("plain", "omega")}
    times: dict[str, list[float]] = {"plain": [], "omega": []}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for kind, fn in fns.items():
            start = time.process_time()
            for _ in range(block):
                fn()
            times[kind].append((time.process_time() - start) / block)
    plain, with_omega = (1000 * statistics.median(times[k]) for k in ("plain", "omega"))
    return {
        "shape": name,
        "task": task,
        "H": hidden,
        "B": batch_size,
        "T": T,
        "plain_ms": round(plain, 4),
        "omega_ms": round(with_omega, 4),
        "ratio": round(with_omega / plain, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed blocks per kind and shape")
    parser.add_argument("--block", type=int, default=10, help="steps in a timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="T=10, 2 blocks of 2 steps: checks that it runs")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, repeats, block = (10, 2, 2) if args.tiny else (None, args.repeats, args.block)
    result = {
        "cpu": cpu_model(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "alpha": ALPHA,
        "clip": CLIP,
        "repeats": repeats,
        "block": block,
        "rows": [measure(name, steps, repeats, block) for name in SHAPES],
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
