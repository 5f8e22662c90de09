"""Cost of every cell against the vanilla RNN, measured in one run (ratios, not absolute timings).

    python benchmarks/cells.py [--hidden 32 --batch 32 --steps 50 --repeats 20] [--tiny] [--out cells.json]

Reports, at the default config's shapes (H=32, B=32, T=50, copy task) on 1 thread by default:
- ms per training step (forward + backward + Adam) of each cell and its ratio to the vanilla RNN's step; the LSTM
  also as it trained before the cell registry (nn.LSTMCell stepped in Python), for the before/after ratio;
- ms per logging event (contributions and Jacobian spectra, log batch 16, 4 Jacobian samples) of the vanilla RNN
  by the explicit recursion and by the generic decomposition (autograd with per-step weight copies), their ratio,
  and each gated cell's generic logging time.
``--tiny`` runs every measurement once at toy sizes (what the test suite runs); ``--out`` also writes the JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _machine import write

from rnngrad import decompose, gradients
from rnngrad.losses import masked_loss
from rnngrad.models import MODELS, RecurrentModel, build_model
from rnngrad.optim import Optimizer


class SteppedLSTM(torch.nn.Module):
    """The LSTM as it trained before the cell registry: nn.LSTMCell stepped in Python, nn.Linear readout."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.cell = torch.nn.LSTMCell(n_in, hidden)
        self.readout = torch.nn.Linear(hidden, n_out)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], self.cell.hidden_size)
        out = []
        for x_t in x.unbind(1):
            h, c = self.cell(x_t, (h, c))
            out.append(h)
        return self.readout(torch.stack(out, 1))


def median_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Median ms of each call over `repeats` rounds, after one warm-up call each; the calls take turns within a
    round, so that load on a shared machine falls on all of them alike and their ratios hold."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * sorted(values)[len(values) // 2] for name, values in times.items()}


def step_fn(model, batch):
    optimizer = Optimizer("adam", model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        masked_loss("copy", model(batch[0]), batch[1], batch[2]).backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50, help="sequence length T")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--log-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-batch", type=int, default=16)
    parser.add_argument("--jacobian-samples", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="every measurement once at toy sizes (a smoke test)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.tiny:
        args.hidden, args.batch, args.steps, args.repeats, args.log_repeats = 4, 4, 6, 1, 1
        args.log_batch, args.jacobian_samples = 2, 1
    torch.set_num_threads(args.threads)
    H, B, T, D = args.hidden, args.batch, args.steps, 10  # noqa: N806 - the usual names
    generator = torch.Generator().manual_seed(0)
    x = torch.nn.functional.one_hot(torch.randint(0, D, (B, T), generator=generator), D).float()
    batch = (x, torch.randint(0, D, (B, T), generator=generator), torch.ones(B, T, dtype=torch.bool))
    log_batch = tuple(tensor[: args.log_batch] for tensor in batch)
    models = {name: build_model(name, D, H, D, seed=0, forget_bias=1.0) for name in MODELS}

    steps = {name: step_fn(model, batch) for name, model in models.items()}
    train_ms = median_ms({**steps, "lstm_stepped_before": step_fn(SteppedLSTM(D, H, D), batch)}, args.repeats)

    def logging(log_step, model: RecurrentModel):
        return lambda: log_step(model, log_batch, "copy", ["last"], args.jacobian_samples)

    events = {"rnn_explicit": logging(gradients.log_step, models["rnn"])}
    events.update({f"{name}_generic": logging(decompose.log_step, model) for name, model in models.items()})
    log_ms = median_ms(events, args.log_repeats)
    write(
        args.out,
        {
            "benchmark": "cells",
            "setup": {"H": H, "B": B, "T": T, "log_batch": args.log_batch, "jacobian_samples": args.jacobian_samples},
            "train_step_ms": {name: round(ms, 3) for name, ms in train_ms.items()},
            "train_step_ratio_to_rnn": {name: round(ms / train_ms["rnn"], 3) for name, ms in train_ms.items()},
            "log_event_ms": {name: round(ms, 3) for name, ms in log_ms.items()},
            "generic_over_explicit_log_ratio": round(log_ms["rnn_generic"] / log_ms["rnn_explicit"], 3),
        },
    )


if __name__ == "__main__":
    main()
