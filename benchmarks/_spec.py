"""A benchmark's run: one grid cell expanded from the default config, so that every key is the pipeline's own, and
its datasets generated once under a scratch folder; the papers' shapes the benchmarks share, and the FLOPs of one
update at a shape (imported by the scripts in this folder)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from rnngrad import config as configuration
from rnngrad import tasks

ROOT = Path(__file__).resolve().parents[1]

# The papers' shapes (benchmarks/compiled.py and methods.py): a grid cell and its training keys.
#   pascanu  Pascanu et al. 2013 Fig. 7: temporal order, H=50, B=20, T=50, tanh, sparse init 0.95, input and readout
#            weights N(0, 0.01^2), fresh data each step, SGD lr 0.01, norm clipping at 1, Omega with alpha 4;
#   irnn     Le et al. 2015's IRNN as config/reproduce/le2015.yaml trains it: adding, H=100, B=16, T=100, relu,
#            identity init, input weights N(0, 0.001^2), SGD lr 0.01, norm clipping at 1, stored training set;
#   default  config/config.yaml's: adding, H=32, B=32, T=50, tanh, orthogonal 1, Adam lr 0.001, clip 1 (one of its
#            baselines' arms), stored training set.
PAPER_SHAPES = {
    "pascanu": {"grid": {"task": "temporal_order", "T": 50, "activation": "tanh", "init": "sparse", "scale": 0.95,
                         "clip": 1.0, "regularizer": 4.0},
                "train": {"hidden": 50, "batch_size": 20, "optimizer": "sgd", "lr": 0.01, "input_init": 0.01,
                          "readout_init": 0.01, "fresh_data": True}},
    "irnn": {"grid": {"task": "adding", "T": 100, "activation": "relu", "init": "identity", "scale": 1.0,
                      "clip": 1.0, "regularizer": 0},
             "train": {"hidden": 100, "batch_size": 16, "optimizer": "sgd", "lr": 0.01, "input_init": 0.001}},
    "default": {"grid": {"task": "adding", "T": 50, "activation": "tanh", "init": "orthogonal", "scale": 1.0,
                         "clip": 1.0, "regularizer": 0},
                "train": {"hidden": 32, "batch_size": 32, "optimizer": "adam", "lr": 0.001}},
}  # fmt: skip
TINY = {"T": 10, "hidden": 8, "batch_size": 4}  # every shape's --tiny size


def default_config() -> dict:
    """config/config.yaml, with the temporal-order task Pascanu et al.'s shapes need."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["tasks"].setdefault("temporal_order", {"variant": "pascanu", "solved_accuracy": 0.99})
    return config


def one_run_spec(config: dict, grid: dict, train: dict, root: Path, prefix: str) -> dict:
    """The spec of the one run ``grid`` (one value an axis) and ``train`` make of ``config``, its datasets generated
    under ``root`` as ``{prefix}-{T}-{split}.npz`` unless there already (no training file with fresh data), on CPU."""
    config["experiments"] = {"bench": {"grid": [grid], "train": train}}
    config["figures"] = {}
    config["logging"].update(every=None, spectra_every=None, at=[])
    (spec,) = configuration.expand(config)
    for split in ("train", "test"):
        path = root / f"{prefix}-{spec['T']}-{split}.npz"
        if not path.exists():
            seed, n = config["data"][f"{split}_seed"], config["data"][f"n_{split}"]
            tasks.generate_file(path, spec["task"], spec["T"], n, seed, spec["variant"], **spec["task_params"])
        spec[f"{split}_data"] = None if split == "train" and spec["fresh_data"] else str(path)
    return {**spec, "device": "cpu"}


def shape_spec(shape: str, seed: int, root: Path, tiny: bool = False, grid: dict | None = None,
               train: dict | None = None) -> dict:  # fmt: skip
    """The spec of one run at a :data:`PAPER_SHAPES` shape (at :data:`TINY`'s size with ``tiny``), ``grid`` and
    ``train`` changing its keys, expanded from the default config with 1000 training and 64 test sequences; no
    evaluation, checkpoint or end within a benchmark's steps."""
    setting = copy.deepcopy(PAPER_SHAPES[shape])
    if tiny:
        setting["grid"]["T"] = TINY["T"]
        setting["train"].update(hidden=TINY["hidden"], batch_size=TINY["batch_size"])
    setting["grid"].update(grid or {})
    setting["train"].update(train or {})
    config = default_config()
    config["data"].update(n_train=1000, n_test=64)
    keys = {**setting["train"], "steps": 10**9, "eval_every": 10**9, "checkpoint_every": 10**9}
    cell = {key: [value] for key, value in setting["grid"].items()} | {"seed": [seed]}
    return one_run_spec(config, cell, keys, root, setting["grid"]["task"])


def update_flops(spec: dict, T: float | None = None, readout_steps: float | None = None,  # noqa: N803
                 omega_carries: bool = True) -> float:  # fmt: skip
    """Matmul FLOPs of one training update of a vanilla RNN run, counted from its shapes: H hidden units, B
    sequences, T steps (``T``; default the spec's: pass a mixed-length run's mean length), D inputs and O outputs of
    its task, a multiply-add 2 FLOPs. Elementwise work (activations, slopes, Omega's norms), the loss, the gradient
    norm, clipping and the optimizer are not counted.

      forward    U x_t + b at every step, 2 B H D T; W h_{t-1} at every step, 2 B H^2 T (h_0 = 0 too: the paths
                 compute it); the readout V h_t + c at R steps, 2 B H O R;
      backward   dL/dh_t = V^T dL/dy_t, 2 B H O R; W^T delta_t carried back for t = 2..T, 2 B H^2 (T - 1);
                 grad_W = sum_t delta_t h_{t-1}^T, 2 B H^2 (T - 1) (h_0 = 0); grad_U = sum_t delta_t x_t^T,
                 2 B H D T; grad_V = sum_t dL/dy_t h_t^T, 2 B H O R;
      Omega      (alpha > 0, Pascanu et al. eq. 10) its gradient sum_k (coef delta_{k+1}) m_k^T, 2 B H^2 (T - 1);
                 with ``omega_carries`` also its carries W^T delta_{k+1}, 2 B H^2 (T - 1) again: rnngrad.regularizer
                 and rnngrad.batched.stacked_omega compute them anew, benchmarks/_kernels.py reuses the backward's.

    R = ``readout_steps``: by default T, as rnngrad's paths compute the readout at every step
    (models.VanillaRNN.readout, batched.stacked_forward) even where only the last is scored; 1 where only the last
    step's is computed (benchmarks/_kernels.py). torch.utils.flop_counter.FlopCounterMode, which does not count the
    in-place recurrences (addmm_, baddbmm_), agrees on both of rnngrad's paths once they are added, but for the
    sequential path's one extra step of W^T delta and grad_W (it carries delta_1 back and multiplies h_0 = 0)."""
    H, B = spec["hidden"], spec["batch_size"]  # noqa: N806 - the lecture's names
    T = spec["T"] if T is None else T  # noqa: N806
    R = T if readout_steps is None else readout_steps  # noqa: N806
    D, O = tasks.n_inputs(spec["task"]), tasks.n_outputs(spec["task"])  # noqa: N806, E741
    forward = 2 * B * H * D * T + 2 * B * H * H * T + 2 * B * H * O * R
    backward = 2 * B * H * O * R + 4 * B * H * H * (T - 1) + 2 * B * H * D * T + 2 * B * H * O * R
    omega = (4 if omega_carries else 2) * B * H * H * (T - 1) if spec["regularizer"] else 0
    return forward + backward + omega
