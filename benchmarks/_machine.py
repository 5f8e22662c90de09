"""What every benchmark writes beside its numbers: the machine, the software and the thread settings, and the
command that measured them (imported by the scripts in this folder; the docs' tables come from it); and the timing
helpers the benchmarks share: CPU time over interleaved blocks, and the rate a large matmul reaches."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

ISAS = ("avx512f", "avx2", "avx", "sse4_2", "asimd", "neon")  # widest first; asimd/neon: ARM


def cpu() -> tuple[str, list[str]]:
    """The CPU model and its vector-ISA flags, from /proc/cpuinfo (Linux; elsewhere platform's processor name)."""
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in (platform.processor(), platform.machine()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return model, [isa for isa in ISAS if isa in flags]


def machine() -> dict:
    import torch

    model, isas = cpu()
    return {
        "cpu_model": model,
        "vector_isa": isas[0] if isas else "none",
        "isa_flags": isas,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def timed_blocks(arms: dict, repeats: int, block: int) -> dict[str, float]:
    """Median CPU seconds (this process's) of one call of each arm, arms interleaved block by block, after one
    warm-up call of each."""
    for fn in arms.values():
        fn()  # warm-up
    times = {name: [] for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            start = time.process_time()
            for _ in range(block):
                fn()
            times[name].append((time.process_time() - start) / block)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_gflops_step(size: int = 512):
    """(a call doing one size x size float32 torch matmul into a preallocated result, its FLOPs): timed beside a
    benchmark's arms (:func:`timed_blocks`), the machine's compute limit at the benchmark's thread setting."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)

    def step():
        torch.mm(a, b, out=out)

    return step, 2 * size**3


def describe(info: dict) -> str:
    """One line naming the machine, for a table's caption."""
    return f"{info['cpu_model']}, {info['vector_isa'].upper()}, {info['cores']} cores, torch {info['torch']}"


def write(path: str | None, results: dict) -> dict:
    """The results with the machine and the command, printed as JSON and written to ``path`` when given."""
    command = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    record = {"command": command, "machine": machine(), **results}
    text = json.dumps(record, indent=1) + "\n"
    print(text, end="")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return record
