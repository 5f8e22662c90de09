"""Speed of one training step and of gradient logging, measured in one run (ratios, not absolute timings).

    python benchmarks/train_step.py [--hidden 128 --batch 64 --steps 100 --repeats 20] [--device cuda]
        [--out benchmarks/results/train_step-H128.json] [--tiny]

Reports, at H=128, B=64, T=100 on 1 thread by default:
- ms per training step (forward + backward + Adam) of rnngrad's VanillaRNN (explicit BPTT backward) and of
  torch.nn.RNN (its fused recurrence), for tanh and relu, and their ratio;
- achieved GFLOP/s of the step against a large float32 matmul measured in the same run;
- the cost of gradient logging, as ratios to a plain step, with the default config's logging batch (16) and
  Jacobian sample (4): a contributions-only logging event (what `logging.every: 1` adds to every step), a full
  event with the Jacobian spectra (what `spectra_every: 1` adds), and the default cadence (two full events, at
  step 0 and the end, over a run of --run-steps updates).
Prints and writes (--out) a JSON with the machine; --tiny runs it at toy sizes in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import time

import torch
from _machine import write

from rnngrad.gradients import log_step
from rnngrad.losses import masked_loss
from rnngrad.models import VanillaRNN
from rnngrad.optim import Optimizer


class TorchRNN(torch.nn.Module):
    """torch.nn.RNN with the same shapes and readout, as the reference."""

    def __init__(self, n_in, hidden, n_out, nonlinearity):
        super().__init__()
        self.rnn = torch.nn.RNN(n_in, hidden, nonlinearity=nonlinearity, batch_first=True)
        self.readout = torch.nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.readout(self.rnn(x)[0])


def best_ms(fn, repeats: int) -> float:
    """Median of `repeats` timings after two warm-up calls (robust to a noisy shared machine)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2]


def step_fn(model, x, y, mask, device):
    optimizer = Optimizer("adam", model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        masked_loss("copy", model(x), y, mask).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="sequence length T")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log-batch", type=int, default=16)
    parser.add_argument("--jacobian-samples", type=int, default=4)
    parser.add_argument("--run-steps", type=int, default=300, help="updates of the run for the default cadence")
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks that the benchmark runs")
    args = parser.parse_args()
    if args.tiny:
        args.hidden, args.batch, args.steps, args.repeats, args.log_batch, args.run_steps = 8, 4, 5, 1, 2, 10
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    H, B, T, D, O = args.hidden, args.batch, args.steps, 10, 10  # noqa: N806, E741 - the usual names
    generator = torch.Generator().manual_seed(0)
    x = torch.nn.functional.one_hot(torch.randint(0, D, (B, T), generator=generator), D).float().to(device)
    y = torch.randint(0, O, (B, T), generator=generator).to(device)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    log_batch = (x[: args.log_batch], y[: args.log_batch], mask[: args.log_batch])
    samples, run_steps = args.jacobian_samples, args.run_steps
    flops = 3 * 2 * B * T * (H * H + H * D + H * O)  # forward, and backward at twice the forward

    n = 128 if args.tiny else 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    matmul_ms = best_ms(lambda: (a @ b, torch.cuda.synchronize() if device.type == "cuda" else None), 5)
    peak = 2 * n**3 / matmul_ms / 1e6

    rows = []
    for act in ("tanh", "relu"):
        ours = VanillaRNN(D, H, O, act, "orthogonal", 1.0, seed=0).to(device)
        theirs = TorchRNN(D, H, O, act).to(device)
        ours_ms = best_ms(step_fn(ours, x, y, mask, device), args.repeats)
        theirs_ms = best_ms(step_fn(theirs, x, y, mask, device), args.repeats)
        contributions_ms = best_ms(lambda m=ours: log_step(m, log_batch, "copy", ["last"], samples, False), 9)
        full_ms = best_ms(lambda m=ours: log_step(m, log_batch, "copy", ["last"], samples), 3)
        rows.append(
            {
                "activation": act,
                "rnngrad_ms": round(ours_ms, 2),
                "torch_nn_rnn_ms": round(theirs_ms, 2),
                "speedup_vs_torch": round(theirs_ms / ours_ms, 3),
                "rnngrad_gflops": round(flops / ours_ms / 1e6, 2),
                "torch_gflops": round(flops / theirs_ms / 1e6, 2),
                "matmul_gflops": round(peak, 1),
                "log_contributions_every_step_ratio": round((ours_ms + contributions_ms) / ours_ms, 3),
                "log_all_every_step_ratio": round((ours_ms + full_ms) / ours_ms, 3),
                "log_default_cadence_ratio": round((run_steps * ours_ms + 2 * full_ms) / (run_steps * ours_ms), 3),
                "log_contributions_ms": round(contributions_ms, 2),
                "log_all_ms": round(full_ms, 2),
            }
        )
    setup = {"H": H, "B": B, "T": T, "log_batch": args.log_batch, "jacobian_samples": samples, "run_steps": run_steps}
    write(args.out, {"benchmark": "train_step", **setup, "threads": args.threads, "device": str(device), "rows": rows})


if __name__ == "__main__":
    main()
