"""How long Snakemake takes to plan the paper grid and to find nothing to do on a finished default run.

    python benchmarks/plan.py [--out benchmarks/results/plan.json]   # from the repository root, after `make figures`

Prints the job count and wall time of `snakemake -n` on config/paper.yaml (in a scratch copy of the workflow, so
nothing exists yet: every job is planned), and of `snakemake -n` on the default config in this checkout, as a JSON
with the machine (also written to --out). --tiny plans config/smoke.yaml in the scratch copy instead and skips
the default config (the test suite runs it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import write

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def dry_run(workdir: Path, *args: str) -> tuple[float, str]:
    command = [str(BIN / "snakemake"), "-n", "--cores", "2", "--scheduler", "greedy", *args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=ENV, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout + result.stderr


def job_count(output: str) -> int:
    match = re.search(r"^total\s+(\d+)", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--tiny", action="store_true", help="plan config/smoke.yaml only: checks that it runs")
    args = parser.parse_args()
    config = "config/smoke.yaml" if args.tiny else "config/paper.yaml"
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("Snakefile", "workflow", "config", "src", "environment.yml"):
            source = ROOT / name
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, Path(scratch) / name)
        plan_s, plan_out = dry_run(Path(scratch), "--configfile", config)
    results = {"benchmark": "plan", "units": "wall seconds", "config": config}
    results |= {"plan_s": round(plan_s, 2), "jobs": job_count(plan_out)}
    if not args.tiny:
        default_s, default_out = dry_run(ROOT)
        results |= {
            "default_noop_s": round(default_s, 2),
            "default_nothing_to_do": "Nothing to be done" in default_out,
            "default_jobs_pending": job_count(default_out),
        }
    write(args.out, results)


if __name__ == "__main__":
    main()
