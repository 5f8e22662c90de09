"""Which code made a result: the training code's hash, the git commit, and the software that ran it.

A run's numbers depend on the modules training imports, not on the figure or table code that reads runs later,
so ``code_sha256`` hashes the training code alone (:func:`training_code`; a test holds it equal to what
``rnngrad.train`` imports): a changed figure module leaves runs current, a changed
gradients.py makes every run stale. The train rule takes the same files as inputs, so Snakemake retrains after
such a change, and ``rnngrad stale`` lists the runs a checkout would retrain. A user's cell (``cells`` in a
config) lives outside the package: its run's code version is ``code_sha256`` and the sha256 of the file defining
the cell (``provenance.cell``), and the train rule takes that file as an input of the cell's jobs.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TRAINING_CODE = (  # what `import rnngrad.train` loads (files; packages as folders)
    "__init__.py", "batched.py", "checkpoints.py", "contract.py", "decompose.py", "evaluation.py", "gradients.py",
    "io.py", "losses.py", "models", "optim.py", "provenance.py", "regularizer.py", "run.py", "run_files.py",
    "stopping.py", "tasks", "train.py",
)  # fmt: skip


def training_code(package: Path = PACKAGE) -> list[Path]:
    """The package's source files that training imports, in a fixed order."""
    files = [package / name for name in TRAINING_CODE if name.endswith(".py")]
    files += [path for name in TRAINING_CODE if not name.endswith(".py") for path in (package / name).glob("*.py")]
    return sorted(files)


@cache
def code_sha256(package: Path = PACKAGE) -> str:
    digest = hashlib.sha256()
    for path in training_code(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def git_state(folder: Path = PACKAGE) -> dict:
    """The checkout's commit and whether the package's sources differ from it (None outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", str(folder)))
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def provenance(device: str, threads: int, cell: str | None = None) -> dict:
    """What status.json records about the code and the machine that produced a run; for a user's cell (``cell``,
    module:Class) also its module, file and sha256 (:func:`rnngrad.models.cell_source`), the part of the run's
    code that lives outside this package."""
    import torch  # here: the figures' manifest records provenance too and needs no torch import

    record = {
        "code_sha256": code_sha256(),
        **git_state(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "threads": threads,
    }
    if cell is not None:
        from rnngrad.models import cell_source

        record["cell"] = cell_source(cell)
    return record


def cell_current(recorded: dict | None, cell: str | None) -> bool:
    """Whether a run's recorded user cell (status.json's provenance.cell, None for a built-in cell) is the one
    ``cell`` (module:Class, or None) names now, by its file's content."""
    if cell is None or recorded is None:
        return cell is None and recorded is None
    from rnngrad.models import cell_source

    return recorded.get("sha256") == cell_source(cell)["sha256"]
