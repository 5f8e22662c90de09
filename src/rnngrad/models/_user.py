"""A user's own cell as a model: imported from ``module:Class``, checked, and wrapped under the readout."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import torch
from torch import nn

from rnngrad.io import file_sha256
from rnngrad.models._base import FAN_IN, RecurrentModel, add_readout


class CellModel(RecurrentModel):
    """A user's cell as a model: any nn.Module whose ``forward(x_t, state)`` returns the next state, a [batch, n]
    tensor or a tuple of them. Optional, on the cell: ``init_state(x)`` (s_0 for inputs [batch, T, D]; default
    zeros of [batch, hidden]), ``output(state)`` (the h the readout reads; default the state, or its first part),
    ``recurrent_weights`` and ``input_weights`` (names of its parameters; default every parameter recurrent).

    The readout is y_t = V h_t + c (``n_out`` outputs, initialised like the vanilla RNN's) or, with ``n_out``
    None, y_t = h_t, for a loss that reads the cell's output directly."""

    def __init__(self, cell: nn.Module, hidden: int, n_out: int | None = None, seed: int = 0):
        super().__init__()
        self.cell, self._hidden = cell, hidden
        names = getattr(cell, "recurrent_weights", [name for name, _ in cell.named_parameters()])
        self.recurrent_weights = {name: f"cell.{name}" for name in names}
        self.input_weights = tuple(f"cell.{name}" for name in getattr(cell, "input_weights", ()))
        if n_out is not None:
            generator = torch.Generator().manual_seed(seed)
            add_readout(self, n_out, hidden, FAN_IN, generator)

    @property
    def hidden(self) -> int:
        return self._hidden

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if hasattr(self.cell, "init_state"):
            return _as_tuple(self.cell.init_state(x))
        return super().init_state(x)

    def step(self, x_t, state):
        return _as_tuple(self.cell(x_t, state[0] if len(state) == 1 else state))

    def output(self, state):
        if hasattr(self.cell, "output"):
            return self.cell.output(state[0] if len(state) == 1 else state)
        return state[0]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return super().readout(h) if hasattr(self, "V") else h


def _as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else tuple(state) if isinstance(state, list) else (state,)


def load_cell(target: str) -> type[nn.Module]:
    """The class a ``module:Class`` string names (the module importable, e.g. on PYTHONPATH)."""
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"{target!r} is not of the form module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} ({err}); is it on PYTHONPATH?") from err
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{module_name}.{class_name} is not an nn.Module subclass")
    return cls


def cell_source(target: str) -> dict:
    """Where a user's cell comes from: its ``module:Class``, the module that defines the class, that module's file
    (absolute) and its sha256. The file is an input of the cell's training jobs and its sha256 part of each run's
    code version (status.json's provenance.cell): editing it retrains the cell's runs. Only that file is tracked,
    not the modules it imports."""
    cls = load_cell(target)
    path = inspect.getsourcefile(cls)
    if path is None:
        raise ValueError(f"{target}: no source file defines {cls.__qualname__}; allowed: a class defined in a .py file")
    path = str(Path(path).resolve())
    return {"target": target, "module": cls.__module__, "file": path, "sha256": file_sha256(path)}


def user_model(target: str, n_in: int, hidden: int, n_out: int, seed: int = 0) -> CellModel:
    """A user's cell ``module:Class``, built as Class(n_in, hidden) with torch's generator seeded from the run's
    seed (restored afterwards), under the readout y_t = V h_t + c."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cell = load_cell(target)(n_in, hidden)
    return CellModel(cell, hidden, n_out, seed)


def check_cell(target: str) -> None:
    """Build a user's cell at toy sizes and run two steps and its readout: ValueError saying what failed."""
    load_cell(target)
    try:
        user_model(target, 3, 4, 2)(torch.zeros(2, 2, 3))
    except Exception as err:  # noqa: BLE001 - any failure of foreign code is reported, with its message
        raise ValueError(
            f"{target} does not fit the cell signature Class(n_in, hidden), forward(x_t, state) -> state "
            f"(state [batch, n] or a tuple of them, output h_t of hidden units): {type(err).__name__}: {err}"
        ) from err
