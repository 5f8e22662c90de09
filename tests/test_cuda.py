"""With device auto on a CUDA machine, training and logging run on the GPU with CPU's results (float tolerance)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_train import datasets, make_spec  # noqa: F401 - the datasets fixture

from rnngrad.run import resolve_device
from rnngrad.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")


@pytest.mark.cuda
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_gpu_run_matches_cpu_run(datasets, tmp_path, activation):  # noqa: F811
    assert resolve_device("auto").type == "cuda"
    spec = make_spec(datasets, activation=activation, dtype="float64", steps=20)
    train({**spec, "device": "cpu"}, tmp_path / "cpu")
    train({**spec, "device": "auto"}, tmp_path / "gpu")
    for name in ("metrics", "gradients", "jacobians", "products"):
        cpu = pd.read_parquet(tmp_path / "cpu" / f"{name}.parquet")
        gpu = pd.read_parquet(tmp_path / "gpu" / f"{name}.parquet")
        pd.testing.assert_frame_equal(gpu, cpu, check_exact=False, rtol=1e-7, atol=1e-12)
