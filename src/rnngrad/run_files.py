"""A run's files: its models, its tables and status.json (written last), and whether a folder holds a finished run.

The names and columns are :mod:`rnngrad.contract`'s. Every write is atomic, and equal content gives equal bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import torch

from rnngrad.contract import LOG_TABLES, RUN_FILES
from rnngrad.io import atomic_write, file_sha256, mismatched_files, read_json, write_json, write_parquet
from rnngrad.provenance import cell_current, code_sha256, provenance


def save_torch(obj, path: Path) -> None:
    """torch.save into memory, then one plain write: the archive holds no file name, so equal states give equal
    bytes, and a full disk raises OSError ENOSPC (torch's own file writer reports it as an unrelated RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    Path(path).write_bytes(buffer.getbuffer())


def model_state(model: torch.nn.Module) -> dict:
    """The model's tensors, each owning its storage: a parameter may be a view into a stack of runs
    (:mod:`rnngrad.batched`), and torch.save would write a view's whole storage."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def save_model(run, name: str) -> None:
    """The run's model as a state dict of CPU tensors (model_init.pt, model_final.pt)."""
    state = {key: value.cpu() for key, value in model_state(run.model).items()}
    atomic_write(run.out_dir / name, lambda tmp: save_torch(state, tmp))


def write_tables(run) -> None:
    """metrics.parquet (the run's rows) and one parquet file for each gradient log, step first."""
    write_parquet(run.out_dir / "metrics.parquet", pd.DataFrame(run.rows))
    for name in LOG_TABLES:
        frames = run.logs[name]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"step": []})
        columns = ["step", *(c for c in frame.columns if c != "step")]
        write_parquet(run.out_dir / f"{name}.parquet", frame[columns])


def write_status(run, final: dict) -> dict:
    """status.json of an ended run (``final``: its last test row, or NaNs where it diverged), with the sha256 of
    every other run file and the provenance; written last, its presence means the run is complete."""
    status = {
        "status": "completed" if run.diverged_at is None else "diverged",
        "steps_done": run.step,
        "diverged_at": run.diverged_at,
        "final_loss": final["loss"],
        "final_metric": final["metric"],
        "final_error_rate": 1.0 - final["seq_solved_frac"],
        "solved_at": run.solved_at,
        "metric_name": final["metric_name"],
        "baseline_loss": run.baseline,
        "sha256": {name: file_sha256(run.out_dir / name) for name in RUN_FILES if name != "status.json"},
        "provenance": provenance(str(run.device), torch.get_num_threads(), run.spec.get("cell")),
    }
    write_json(run.out_dir / "status.json", status)
    return status


def completed_status(spec: dict, out_dir: str | Path) -> dict | None:
    """status.json of a finished run of this spec, by this training code (and this file of a user's cell), with
    every file intact; else None."""
    out_dir = Path(out_dir)
    try:
        status, saved_spec = read_json(out_dir / "status.json"), read_json(out_dir / "spec.json")
    except (OSError, ValueError):
        return None
    recorded = status.get("provenance", {})
    current = (
        saved_spec == spec
        and recorded.get("code_sha256") == code_sha256()
        and cell_current(recorded.get("cell"), spec.get("cell"))
    )
    return status if current and not mismatched_files(out_dir, status["sha256"]) else None
