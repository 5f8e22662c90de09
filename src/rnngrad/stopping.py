"""A clean stop on SIGTERM or SIGUSR1: finish the step, checkpoint every active run, exit as failed.

A cluster ends a job at its time limit with SIGTERM, then SIGKILL after a grace period (SLURM's KillWait, often
30 s), and SLURM can send a signal earlier (``sbatch --signal``). Inside :func:`handled`, such a signal only sets
a flag; the training loops call :func:`stop_if_requested` between steps, which writes every active run's
checkpoint at the step it reached and raises :class:`Stopped`. The CLI then exits with 128 + the signal's number,
the shell's status for a process ended by that signal, so Snakemake takes the job as failed and reruns it, and
the rerun resumes every run at the step it stopped at: no step is lost.

The flag is process-wide, like the signal dispositions it stands for.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_received: list[int] = []  # stop signals received inside handled(); cleared when it ends


class Stopped(Exception):
    """Training stopped on a signal after checkpointing its active runs."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_status = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}: checkpoints written; a rerun resumes them")


@contextmanager
def handled() -> Iterator[None]:
    """Within the block, :data:`STOP_SIGNALS` request a stop instead of ending the process."""
    previous = {signum: signal.signal(signum, _request) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()


def _request(signum: int, _frame) -> None:
    _received.append(signum)


def stop_if_requested(runs) -> None:
    """Between steps: if a stop signal came, write each run's checkpoint (each a :class:`rnngrad.run.Run`) and
    raise :class:`Stopped`."""
    if not _received:
        return
    from rnngrad import checkpoints  # here: the CLI imports this module (Stopped) for every stage, without torch

    name = signal.Signals(_received[0]).name
    for run in runs:
        checkpoints.save_checkpoint(run)
        run.progress(f"stopped by signal {name} at step {run.step}; checkpoint written, a rerun resumes here")
    raise Stopped(_received[0])
