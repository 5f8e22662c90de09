"""A run's checkpoint: written every ``checkpoint_every`` steps and on a stop signal, read back on a resume.

Its content is plain data: tensors, numbers, strings, lists and dicts, which ``torch.load(weights_only=True)``
reads without running anything, with a sha256 of that content so that damage which still unpickles is caught
too. It holds the model, the optimizer, the batch sampler's generator and every row logged so far, so a resumed
run ends with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from rnngrad.contract import LOG_TABLES
from rnngrad.io import atomic_write
from rnngrad.run_files import model_state, save_torch


def checkpoint_path(out_dir: Path) -> Path:
    return out_dir / "checkpoint.pt"


def checkpoint_state(run) -> dict:
    """Everything a resume of the run (a :class:`rnngrad.run.Run`) needs, as CPU tensors, numbers, strings, lists
    and dicts only (no pickled objects), so that it loads with ``torch.load(weights_only=True)``."""
    return on_cpu(
        {
            "spec": run.spec,
            "step": run.step,
            "model": model_state(run.model),
            "optimizer": run.optimizer.state_dict(),
            "sampler": run.sampler.get_state(),
            "rows": run.rows,
            "logs": {name: [frame_columns(frame) for frame in frames] for name, frames in run.logs.items()},
        }
    )


def save_checkpoint(run) -> None:
    """The run's checkpoint, with the sha256 of its content: a damaged file that still unpickles (a flipped byte in
    a tensor) is then refused too."""
    state = checkpoint_state(run)
    state["sha256"] = content_sha256(state)
    atomic_write(checkpoint_path(run.out_dir), lambda tmp: save_torch(state, tmp))


def try_resume(run) -> bool:
    """Restore the run's last checkpoint of this same spec, if any; a checkpoint of another spec is ignored.

    Loaded with ``weights_only=True``: a file holding anything but tensors, numbers and strings (a tampered
    pickle that would run code), or a truncated or damaged one, is refused with an error naming it, nothing in
    it is run, and the run restarts from its initial state (the next checkpoint replaces the file)."""
    path = checkpoint_path(run.out_dir)
    if not path.exists():
        return False
    fresh = checkpoint_state(run)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        if state["spec"] != run.spec:
            return False
        if content_sha256({key: value for key, value in state.items() if key != "sha256"}) != state.get("sha256"):
            raise ValueError("its content does not match the sha256 it was written with")
        if any(layout(state[key]) != layout(fresh[key]) for key in ("model", "optimizer", "sampler")):
            raise ValueError("its model, optimizer or sampler state does not fit this run")
        logs = {name: [columns_frame(saved) for saved in state["logs"][name]] for name in LOG_TABLES}
        step, rows = int(state["step"]), list(state["rows"])
    except Exception as err:  # noqa: BLE001 - whatever is wrong with the file, the answer is the same
        reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        print(
            f"{run.spec['run_id']}: ERROR: refused checkpoint {path} ({reason}). It is not a "
            "checkpoint rnngrad wrote (only tensors, numbers and strings are read; nothing in it was run) or it "
            "is damaged; the run restarts from its initial state (step 0) and its next checkpoint replaces it",
            file=sys.stderr,
            flush=True,
        )
        return False
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.sampler.set_state(state["sampler"])
    run.step, run.rows, run.logs = step, rows, logs
    return True


def frame_columns(frame: pd.DataFrame) -> dict:
    """A log frame as plain lists and dtype names, which ``torch.load(weights_only=True)`` reads back."""
    return {"columns": {name: frame[name].tolist() for name in frame}, "dtypes": frame.dtypes.astype(str).to_dict()}


def columns_frame(saved: dict) -> pd.DataFrame:
    """The frame :func:`frame_columns` was given, with its dtypes."""
    return pd.DataFrame(saved["columns"]).astype(saved["dtypes"])


def on_cpu(state):
    """A nested state with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: on_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return [on_cpu(value) for value in state]
    return state


def content_sha256(state) -> str:
    """sha256 of a nested state's keys, values and tensors' bytes (not of its pickle, whose bytes depend on which
    equal strings happen to be one object).

    The plain part is hashed as its JSON text (floats print their shortest round-trip form, so the text is exact;
    1, 1.0 and true differ), which the C encoder writes at about 5x the speed of a Python walk over the same
    objects: a checkpoint holds every row logged so far, so this runs over all of them at every checkpoint. Each
    tensor stands in the text as its dtype and shape, and its bytes join the digest in the order the encoder meets
    it."""
    digest = hashlib.sha256()

    def token(value) -> str:
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
            return f"tensor {value.dtype} {tuple(value.shape)}"
        return f"{type(value).__name__} {value!r}"  # any other object by its exact repr

    text = json.dumps(state, default=token)
    digest.update(text.encode())
    return digest.hexdigest()


def layout(state):
    """A nested state's keys, lengths, and tensor shapes and dtypes, without its values."""
    if isinstance(state, torch.Tensor):
        return tuple(state.shape), state.dtype
    if isinstance(state, dict):
        return {key: layout(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return [layout(value) for value in state]
    return type(state)
