"""Peak memory of one test evaluation (forward, loss, metrics) at section 4.1.1's paper sizes: a 50-unit tanh RNN on
temporal order sequences, each measurement in a fresh process (its maximum resident set, imports and the one-hot
inputs included), the whole set in one forward against chunks of sequences (rnngrad.evaluation.EVAL_CHUNK_CELLS).

    python benchmarks/eval_memory.py [--sequences 10000] [--length 5000] [--whole-sequences 1000] [--out F]
    (--tiny: 64 and 32 sequences of 50 steps, chunks of 4 sequences, for the tests)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _machine import write

from rnngrad import evaluation

MEASURE = """
import json, resource, sys, torch
from rnngrad import evaluation, tasks
from rnngrad.losses import masked_loss, metrics
from rnngrad.models import build_model
torch.set_num_threads(1)
torch.manual_seed(0)
n, T, hidden, chunk_cells = (int(arg) for arg in sys.argv[1:])
evaluation.EVAL_CHUNK_CELLS = chunk_cells
x, y, mask = tasks.get("temporal_order").to_model(tasks.generate("temporal_order", T, n, 2, "pascanu"))
model = build_model("rnn", tasks.n_inputs("temporal_order"), hidden, tasks.n_outputs("temporal_order"))
with torch.no_grad():
    outputs = evaluation.outputs_in_chunks(model, x, hidden)
    loss = float(masked_loss("temporal_order", outputs, y, mask))
peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"loss": loss, "peak_rss_gib": round(peak_gib, 3)}))
"""


def measure(sequences: int, length: int, hidden: int, chunk_cells: int) -> dict:
    """One evaluation in a fresh process; chunked when the set's states pass chunk_cells."""
    start = time.perf_counter()
    arguments = [str(value) for value in (sequences, length, hidden, chunk_cells)]
    done = subprocess.run([sys.executable, "-c", MEASURE, *arguments], capture_output=True, text=True, check=True)
    size = evaluation.chunk_sequences(sequences, length, hidden, chunk_cells)
    return {"sequences": sequences, "length": length, "hidden": hidden, "chunked": size < sequences,
            "chunk_sequences": size,
            "seconds": round(time.perf_counter() - start, 1), **json.loads(done.stdout)}  # fmt: skip


def main() -> None:
    import torch

    torch.set_num_threads(1)  # as in each measuring process (and a training job): the record says so

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=10000, help="the chunked evaluation's test sequences")
    parser.add_argument("--length", type=int, default=5000)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--whole-sequences", type=int, default=1000, help="the one-forward evaluation's (RAM bound)")
    parser.add_argument("--tiny", action="store_true", help="64 and 32 sequences of 50 steps (for the tests)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.tiny:
        args.sequences, args.length, args.whole_sequences = 64, 50, 32
    cells = 4 * args.length * args.hidden if args.tiny else evaluation.EVAL_CHUNK_CELLS
    rows = [
        measure(args.whole_sequences, args.length, args.hidden, args.whole_sequences * args.length * args.hidden),
        measure(args.sequences, args.length, args.hidden, cells),
    ]
    write(args.out, {"benchmark": "eval_memory", "chunk_cells": cells, "rows": rows})


if __name__ == "__main__":
    main()
