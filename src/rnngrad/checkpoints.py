"""A checkpoint's content as plain data: tensors, numbers, strings, lists and dicts, which
``torch.load(weights_only=True)`` reads without running anything, with a sha256 of that content so that damage
which still unpickles is caught too."""

from __future__ import annotations

import hashlib

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
    equal strings happen to be one object)."""
    digest = hashlib.sha256()

    def visit(value) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(f"tensor {value.dtype} {tuple(value.shape)}".encode())
            digest.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            digest.update(f"dict {len(value)}".encode())
            for key, item in value.items():
                visit(key)
                visit(item)
        elif isinstance(value, list | tuple):
            digest.update(f"list {len(value)}".encode())
            for item in value:
                visit(item)
        else:  # numbers, strings, bools, None: repr is exact (floats print their shortest round-trip form)
            digest.update(f"{type(value).__name__} {value!r}".encode())

    visit(state)
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
