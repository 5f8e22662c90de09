"""Shared fixtures: small float64 models and batches built without any dataset file."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from rnngrad import tasks
from rnngrad.models import VanillaRNN

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "workflow", "config", "src", "environment.yml"]  # what a workflow run reads
torch.set_num_threads(1)  # small matrices: one thread is many times faster on a shared 2-core machine
# In CI the property tests draw the same examples every run, so a red CI is a reproducible case; locally each run
# draws new ones (and Hypothesis replays any failure it has found before).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def make_batch(task: str, batch: int, steps: int, seed: int, input_scale: float = 1.0):
    """Random inputs, targets and an every-step mask in the shapes tasks.load() returns (float64)."""
    generator = torch.Generator().manual_seed(seed)
    if task == "copy":
        symbols = torch.randint(0, 10, (batch, steps), generator=generator)
        x = torch.nn.functional.one_hot(symbols, 10).double() * input_scale
        y = torch.randint(0, 10, (batch, steps), generator=generator)
    else:
        x = torch.rand(batch, steps, 2, generator=generator, dtype=torch.float64) * input_scale
        y = torch.rand(batch, steps, generator=generator, dtype=torch.float64)
    return x, y, torch.ones(batch, steps, dtype=torch.bool)


def digest(arrays: dict[str, np.ndarray]) -> str:
    """One sha256 over every array's name and raw bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(arrays[name].tobytes())
    return h.hexdigest()


def looped_states(model, x):
    """h_1..h_T ([batch, T, H]) by the plain loop of the lecture, which autograd follows step by step: the
    reference that the model's own recurrence (explicit BPTT) and the logged decomposition are held against."""
    h = x.new_zeros(x.shape[0], model.hidden)
    states = []
    for t in range(x.shape[1]):
        h = model.act.f(h @ model.W.T + x[:, t] @ model.U.T + model.b)
        states.append(h)
    return torch.stack(states, 1)


def make_model(task: str, hidden: int, activation: str, scale: float, seed: int, init: str = "orthogonal"):
    return VanillaRNN(tasks.n_inputs(task), hidden, tasks.n_outputs(task), activation, init, scale, seed=seed).double()


@pytest.fixture
def root() -> Path:
    return ROOT


def copy_workflow(target: Path) -> Path:
    """The workflow's files (src/ too: the figure rules take their modules as inputs) copied into target."""
    target.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target / name)
    return target
