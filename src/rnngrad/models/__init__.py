"""Recurrent cells: one module a cell, registered by being in this package, each passing one conformance suite.

Every module of this package whose name does not start with ``_`` is a cell, named by its module (the config's
``model``), and defines ``MODEL``: a :class:`RecurrentModel` subclass built as ``MODEL(n_in, hidden, n_out, seed=,
...)`` whose other keyword arguments come from the run spec where it has them (tests/test_model_conformance.py
holds each one to the interface: per-step form equal to the training path, C_{t,k} adding up to autograd's
gradient, step Jacobians equal to finite differences, determinism in the seed). A user's cell needs no module
here: ``cells: {name: module:Class}`` in a config (:func:`user_model`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from rnngrad.models._base import FAN_IN, GLOROT, RecurrentModel, glorot_bound, input_weights
from rnngrad.models._user import CellModel, cell_source, check_cell, load_cell, user_model
from rnngrad.models.gru import GRU
from rnngrad.models.lru import LRU
from rnngrad.models.lstm import LSTM
from rnngrad.models.rnn import ACTIVATIONS, INITS, Activation, Recurrence, VanillaRNN, activation, recurrent_init

LSTMBaseline = LSTM  # the name the LSTM had before the cell registry
MODELS: dict[str, type[RecurrentModel]] = {
    name: importlib.import_module(f"{__name__}.{name}").MODEL
    for _, name, _ in sorted(pkgutil.iter_modules(__path__), key=lambda module: module.name != "rnn")
    if not name.startswith("_")
}  # the vanilla RNN first: it is the default


def build_model(model: str, n_in: int, hidden: int, n_out: int, cell: str | None = None, **kwargs) -> RecurrentModel:
    """The model named ``model`` (or the user's ``cell``, module:Class); keyword arguments its class does not take
    (an RNN's activation for an LSTM, say) are left out, so that one call site builds every cell from a run spec."""
    if cell is not None:
        return user_model(cell, n_in, hidden, n_out, kwargs.get("seed", 0))
    if model not in MODELS:
        raise ValueError(f"model: unknown value {model!r}; allowed: {list(MODELS)}")
    cls = MODELS[model]
    accepted = inspect.signature(cls).parameters
    return cls(n_in, hidden, n_out, **{key: value for key, value in kwargs.items() if key in accepted})


__all__ = [
    "ACTIVATIONS", "FAN_IN", "GLOROT", "GRU", "INITS", "LRU", "LSTM", "MODELS", "Activation", "CellModel",
    "LSTMBaseline", "Recurrence", "RecurrentModel", "VanillaRNN", "activation", "build_model", "cell_source",
    "check_cell", "glorot_bound", "input_weights", "load_cell", "recurrent_init", "user_model",
]  # fmt: skip
