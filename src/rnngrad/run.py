"""One training run: the loop that trains it from its resolved spec, and the update step's parts.

Divergence is recorded, not raised: a NaN or Inf loss or gradient ends the run with status ``diverged`` and
every log up to that step. A run killed mid-way resumes from its last checkpoint and ends with the same numbers
as an uninterrupted one, because the model, the optimizer and the batch sampler's generator are all restored.
The run's parts live beside it: its evaluation and gradient logs in :mod:`rnngrad.evaluation`, its checkpoint
in :mod:`rnngrad.checkpoints`, its files in :mod:`rnngrad.run_files`. :mod:`rnngrad.batched` trains several
runs stacked, each still a :class:`Run`; :mod:`rnngrad.train` picks one path or the other for a group.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnngrad import checkpoints, regularizer, stopping, tasks
from rnngrad.contract import LOG_TABLES
from rnngrad.evaluation import evaluate, has_solved, log_gradients, row_extras
from rnngrad.io import read_json, write_json
from rnngrad.losses import masked_loss, metrics
from rnngrad.models import build_model
from rnngrad.optim import Optimizer
from rnngrad.run_files import save_model, write_status, write_tables

SAMPLER_SEED_OFFSET = 1_000_003  # the batch sampler's seed, distinct from the initialisation's
# Fresh data: the dataset seed of a run's minibatch at a step, far above any config's data seeds (< 2^62), so that
# no training minibatch is ever a prefix of a stored test set; the length of a mixed-length minibatch is drawn from
# its own stream.
FRESH_SEED_BASE = 1 << 62
LENGTH_STREAM = 7_919


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was asked for but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(device)


def log_steps(spec: dict) -> dict[int, bool]:
    """Logged steps, each mapped to whether the Jacobian spectra are logged with its contributions.

    Step 0 (before any update), the end and 'at' log both; 'every' adds contribution steps, 'spectra_every'
    steps with both."""
    steps = dict.fromkeys(range(0, spec["steps"] + 1, spec["log_every"] or spec["steps"] + 1), False)
    full = {0, spec["steps"], *(s for s in spec["log_at"] if s <= spec["steps"])}
    full.update(range(0, spec["steps"] + 1, spec["log_spectra_every"] or spec["steps"] + 1))
    return {**steps, **dict.fromkeys(full, True)}


def fresh_batch(spec: dict, step: int) -> tuple[int, dict[str, np.ndarray]]:
    """The training minibatch of a run with fresh data at ``step`` (Pascanu et al. 2013 generate every minibatch):
    a pure function of the run's seed and the step, so a run is deterministic, resumes bit for bit from any step
    and needs no training file. With ``train_lengths`` [T_min, T_max] its T is drawn uniformly from that range.
    Returns (T, the task's arrays)."""
    if not 0 <= step < 1 << 32 or not 0 <= spec["seed"] < 1 << 29:
        raise ValueError(f"fresh_data: seed {spec['seed']} or step {step} out of range (seed < 2^29, step < 2^32)")
    length = spec["T"]
    if spec["train_lengths"]:
        low, high = spec["train_lengths"]
        length = int(np.random.Generator(np.random.PCG64([LENGTH_STREAM, spec["seed"], step])).integers(low, high + 1))
    seed = FRESH_SEED_BASE + (spec["seed"] << 32) + step
    return length, tasks.generate(
        spec["task"], length, spec["batch_size"], seed, spec["variant"], **spec["task_params"]
    )


def grad_norm(params) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))


def grad_largest(params) -> float:
    """max |g_i| over every element of every parameter's gradient (what value clipping compares with c)."""
    return float(torch.stack([p.grad.abs().max() for p in params]).max())


CLIP_MODES = ("norm", "value")


def is_clipped(spec: dict, norm: float, largest: float) -> bool:
    """Whether the update's gradient is clipped: by norm (Pascanu et al. 2013) where ||g|| > c, by value (Arjovsky et
    al. 2016's code) where some |g_i| > c, so that the metrics' ``clipped`` column says the clip changed g."""
    clip, mode = spec["clip"], spec["clip_mode"]
    if mode not in CLIP_MODES:
        raise ValueError(f"clip_mode: unknown value {mode!r}; allowed: {list(CLIP_MODES)}")
    return clip is not None and (largest if mode == "value" else norm) > clip


def clip_gradients(params, spec: dict, norm: float) -> None:
    """Clip the gradients in place, as is_clipped decided: ``norm``, Pascanu et al. 2013's Algorithm 1,
    g <- c g / ||g||; ``value``, every element clamped to [-c, c], as Arjovsky et al. 2016's baselines
    (github.com/amarshah/complex_RNN at 3537fbf: adding_problem.py lines 59-82 and memory_problem.py lines 51-74,
    ``T.clip(g, -gradient_clipping, gradient_clipping)`` with gradient_clipping = 1, for the LSTM, IRNN and tanh
    RNN, not the unitary RNN)."""
    clip = spec["clip"]
    for p in params:
        if spec["clip_mode"] == "value":
            p.grad.clamp_(-clip, clip)
        else:
            p.grad.mul_(clip / norm)


class Run:
    """One training run: its state, the rows it has logged so far (all of which a checkpoint holds) and its loop."""

    def __init__(self, spec: dict, out_dir: str | Path):
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.device = resolve_device(spec["device"])
        if self.device.type == "cuda":
            # CPU kernels used here are deterministic already; the switch costs ~2 s of imports per job.
            # cuBLAS needs a fixed workspace to be deterministic (set before its first call).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        self.dtype = getattr(torch, spec["dtype"])
        self.train_set = None if spec["fresh_data"] else self._on_device(tasks.load(spec["train_data"]))
        self.test_set = self._on_device(tasks.load(spec["test_data"]))
        # extra test lengths, evaluated once at the end (length generalisation) and loaded one at a time then: at
        # the paper's budget, section 4.1.1's ten sets of 10,000 sequences hold 3 GB a run
        self.length_paths = dict(zip(spec["eval_lengths"], spec["eval_data"], strict=True))
        missing = [path for path in self.length_paths.values() if not Path(path).is_file()]
        if missing:  # before training, not after it
            raise FileNotFoundError(f"{spec['run_id']}: eval_data file(s) missing: {missing}")
        self.baseline = float(read_json(Path(spec["test_data"]).with_suffix(".json"))["baseline_loss"])
        log_n = min(spec["log_batch"], self.test_set[0].shape[0])
        self.log_batch = tuple(tensor[:log_n] for tensor in self.test_set)
        self.model = build_model(
            spec["model"],
            tasks.n_inputs(spec["task"]),
            spec["hidden"],
            tasks.n_outputs(spec["task"]),
            activation_name=spec["activation"],
            init=spec["init"],
            scale=spec["scale"],
            seed=spec["seed"],
            forget_bias=spec["forget_bias"],
            cell=spec["cell"],
            input_init=spec["input_init"],
            readout_init=spec["readout_init"],
            init_nonzero=spec["init_nonzero"],
        ).to(device=self.device, dtype=self.dtype)
        self.optimizer = Optimizer(
            spec["optimizer"],
            self.model.parameters(),
            spec["lr"],
            spec["momentum"],
            spec["rmsprop_alpha"],
            spec["rmsprop_eps"],
            spec["rmsprop_init"],
        )
        self.sampler = torch.Generator().manual_seed(spec["seed"] + SAMPLER_SEED_OFFSET)
        self.step = 0
        self.rows: list[dict] = []
        self.logs: dict[str, list[pd.DataFrame]] = {name: [] for name in LOG_TABLES}
        self.diverged_at: int | None = None
        self.solved_at: int | None = None  # the step where a run that trains until solved met its criterion
        self.batch_length = spec["T"]  # the T of the last training batch (drawn per batch with train_lengths)
        self.logged = log_steps(spec)

    def _on_device(self, data: tuple) -> tuple:
        x, y, mask = data
        y = y.to(self.dtype) if y.is_floating_point() else y
        return x.to(self.device, self.dtype), y.to(self.device), mask.to(self.device)

    def batch_index(self) -> torch.Tensor:
        """The next training batch's sequence numbers, drawn from this run's own sampler generator."""
        return torch.randint(self.train_set[0].shape[0], (self.spec["batch_size"],), generator=self.sampler)

    def draw_batch(self, padded: bool = False) -> tuple:
        """The next training batch: generated fresh for this step, or drawn from the stored training set with this
        run's own sampler generator. ``padded``: a batch of a length drawn from ``train_lengths`` right-padded to
        the longest (:func:`rnngrad.tasks.pad`), as the stacked path takes it."""
        if self.train_set is None:
            spec = self.spec
            self.batch_length, arrays = fresh_batch(spec, self.step)
            if padded and spec["train_lengths"]:
                longest = spec["train_lengths"][1]
                arrays = tasks.pad(spec["task"], arrays, longest, spec["variant"], **spec["task_params"])
            return self._on_device(tasks.get(spec["task"]).to_model(arrays))
        index = self.batch_index().to(self.device)
        return tuple(part[index] for part in self.train_set)

    def record_train(
        self, loss: float, batch_metrics: dict, norm: float, omega: float = math.nan, largest: float = math.nan
    ) -> bool:
        """Append this step's train row (the batch's T, the regulariser's Omega, whether the gradient is clipped:
        :func:`is_clipped` of its norm and, for value clipping, its largest element); False when its loss or
        gradient norm is NaN/Inf."""
        clipped = is_clipped(self.spec, norm, largest)
        extras = row_extras(self.spec, self.batch_length, norm, clipped, omega)
        self.rows.append({"step": self.step, "split": "train", "loss": loss, **batch_metrics, **extras})
        return math.isfinite(loss) and math.isfinite(norm)

    def train_step(self) -> bool:
        """One update; False when the loss or the gradient is NaN/Inf (the update is then not applied)."""
        x, y, mask = self.draw_batch()
        self.optimizer.zero_grad()
        alpha = self.spec["regularizer"]
        if alpha:  # the regulariser needs dE/dh_t of the loss: keep the states' gradient
            states = self.model.states(x)
            states.retain_grad()
            outputs = self.model.readout(states)
        else:
            outputs = self.model(x)
        loss = masked_loss(self.spec["task"], outputs, y, mask)
        loss.backward()
        omega = math.nan
        if alpha:  # Pascanu et al. 2013: alpha dOmega/dW joins the loss gradient before the norm is clipped
            value, grad_w = regularizer.omega(
                self.model.W.detach(), states.detach(), states.grad, self.spec["activation"]
            )
            self.model.W.grad.add_(grad_w, alpha=alpha)
            omega = float(value)
        params = list(self.model.parameters())
        norm = grad_norm(params)
        largest = grad_largest(params) if self.spec["clip_mode"] == "value" else math.nan
        batch_metrics = metrics(self.spec["task"], outputs, y, mask, self.spec["error_rule"])
        if not self.record_train(float(loss.detach()), batch_metrics, norm, omega, largest):
            return False
        if self.rows[-1]["clipped"]:  # by norm (Pascanu et al. 2013, Algorithm 1) or by value (clip_mode)
            clip_gradients(params, self.spec, norm)
        self.optimizer.step()
        return True

    def run(self) -> dict:
        """Train to the end, to divergence or (until_solved) to success, writing every run file; returns
        status.json's content."""
        self.start()
        while self.step < self.spec["steps"]:
            stopping.stop_if_requested([self])
            self.before_step()
            if self.solved_at is not None or not self.end_step(self.train_step()):
                break
        return self.finish()

    def start(self) -> None:
        """Write spec.json, then resume from the checkpoint or save the initial model."""
        write_json(self.out_dir / "spec.json", self.spec)
        # Before any resume: Snakemake may have deleted model_init.pt of a killed job, and the model built from
        # the seed is exactly the initial one.
        save_model(self, "model_init.pt")
        if checkpoints.try_resume(self):
            self.progress(f"resumed at step {self.step} from {checkpoints.checkpoint_path(self.out_dir).name}")
        self.clock = (time.perf_counter(), self.step)

    def before_step(self) -> None:
        """The evaluation and gradient logging due at this step, before its update. A run that trains until solved
        and meets its criterion here stops: its final logging (spectra included) is this step's."""
        if self.step % self.spec["eval_every"] == 0:
            row = evaluate(self)
            self.report(row)
            if has_solved(self, row):
                self.solved_at = self.step
        if self.step in self.logged or self.solved_at is not None:
            log_gradients(self, spectra=self.logged.get(self.step, False) or self.solved_at is not None)

    def end_step(self, updated: bool) -> bool:
        """Count the update and checkpoint when due, or record the divergence (False: the run stops)."""
        if not updated:
            self.diverged_at = self.step
            return False
        self.step += 1
        if self.step % self.spec["checkpoint_every"] == 0 and self.step < self.spec["steps"]:
            checkpoints.save_checkpoint(self)
        return True

    def finish(self) -> dict:
        """Final logging and evaluation of a run that ended or diverged; writes every file, status.json last."""
        if self.solved_at is not None:
            final = next(row for row in reversed(self.rows) if row["split"] == "test")  # logged and evaluated
        elif self.diverged_at is None:
            log_gradients(self, spectra=True)
            final = evaluate(self)
            if not math.isfinite(final["loss"]):
                self.diverged_at = self.step  # the last update was finite but sent the test loss to NaN/Inf
        if self.diverged_at is not None:
            final = {"loss": math.nan, "metric": math.nan, "metric_name": self.rows[-1]["metric_name"]}
            final["seq_solved_frac"] = math.nan
        else:
            for length, path in self.length_paths.items():
                evaluate(self, self._on_device(tasks.load(path)), "test_length", length)
        save_model(self, "model_final.pt")
        write_tables(self)
        status = write_status(self, final)  # last: its presence means the run is complete
        checkpoints.checkpoint_path(self.out_dir).unlink(missing_ok=True)
        self.progress(f"{status['status']} after {self.step} steps: test loss {final['loss']:.4g}")
        return status

    def progress(self, message: str) -> None:
        """One line in the job's log (stdout), flushed, so that a long job is never silent."""
        print(f"{self.spec['run_id']}: {message}", flush=True)

    def report(self, row: dict) -> None:
        """Progress at each evaluation: step, losses, gradient norm, speed and the time left."""
        start, start_step = self.clock
        last = self.rows[-2] if len(self.rows) > 1 and self.rows[-2]["split"] == "train" else None
        train = f"train loss {last['loss']:.4g}, grad norm {last['grad_norm']:.3g}, " if last else ""
        speed = ""
        if self.step > start_step:  # no speed before the first step of this process
            rate = (self.step - start_step) / max(time.perf_counter() - start, 1e-9)
            speed = f", {rate:.1f} steps/s, ETA {(self.spec['steps'] - self.step) / rate:.0f} s"
        self.progress(f"step {self.step}/{self.spec['steps']}: {train}test loss {row['loss']:.4g}{speed}")
