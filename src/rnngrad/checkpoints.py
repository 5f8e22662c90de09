"""A checkpoint's content as plain data: tensors, numbers, strings, lists and dicts, which
``torch.load(weights_only=True)`` reads without running anything, with a sha256 of that content so that damage
which still unpickles is caught too."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import torch


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
