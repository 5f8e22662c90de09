"""Train runs from their resolved specs: metrics, gradient logs, checkpoints, divergence as a result.

Divergence is recorded, not raised: a NaN or Inf loss or gradient ends the run with status ``diverged`` and
every log up to that step. A run killed mid-way resumes from its last checkpoint and ends with the same numbers
as an uninterrupted one, because the model, the optimizer and the batch sampler's generator are all restored.
A training job trains a group of runs (:func:`train_group`, grouping rule in :mod:`rnngrad.groups`); each run
writes exactly the files it writes when trained alone.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pandas as pd
import torch

from rnngrad import decompose, gradients, tasks
from rnngrad.contract import LOG_TABLES, RUN_FILES
from rnngrad.io import atomic_write, file_sha256, mismatched_files, read_json, write_json, write_parquet
from rnngrad.losses import masked_loss, metrics
from rnngrad.models import VanillaRNN, build_model
from rnngrad.optim import Optimizer
from rnngrad.provenance import code_sha256, provenance

SAMPLER_SEED_OFFSET = 1_000_003  # the batch sampler's seed, distinct from the initialisation's


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


def save_torch(obj, path: Path) -> None:
    """torch.save through a file object: the archive then holds no file name, so equal states give equal bytes."""
    with open(path, "wb") as handle:
        torch.save(obj, handle)


def grad_norm(params) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))


class Run:
    """One training run: its state and the rows it has logged so far (all of which a checkpoint holds)."""

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
        self.train_set = self._on_device(tasks.load(spec["train_data"]))
        self.test_set = self._on_device(tasks.load(spec["test_data"]))
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
            spec["optimizer"], self.model.parameters(), spec["lr"], spec["momentum"], spec["rmsprop_alpha"]
        )
        self.sampler = torch.Generator().manual_seed(spec["seed"] + SAMPLER_SEED_OFFSET)
        self.step = 0
        self.rows: list[dict] = []
        self.logs: dict[str, list[pd.DataFrame]] = {name: [] for name in LOG_TABLES}
        self.diverged_at: int | None = None
        self.logged = log_steps(spec)

    def _on_device(self, data: tuple) -> tuple:
        x, y, mask = data
        y = y.to(self.dtype) if y.is_floating_point() else y
        return x.to(self.device, self.dtype), y.to(self.device), mask.to(self.device)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {
            "spec": self.spec,
            "step": self.step,
            "model": self.model_state(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.get_state(),
            "rows": self.rows,
            "logs": self.logs,
        }
        atomic_write(self.checkpoint_path, lambda tmp: save_torch(state, tmp))

    def try_resume(self) -> bool:
        """Restore the last checkpoint of this same spec, if any; a checkpoint of another spec is ignored."""
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, weights_only=False, map_location=self.device)
        if state["spec"] != self.spec:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.set_state(state["sampler"])
        self.step, self.rows, self.logs = state["step"], state["rows"], state["logs"]
        return True

    def evaluate(self) -> dict:
        x, y, mask = self.test_set
        with torch.no_grad():
            outputs = self.model(x)
            loss = float(masked_loss(self.spec["task"], outputs, y, mask))
        row = {"step": self.step, "split": "test", "loss": loss, **metrics(self.spec["task"], outputs, y, mask)}
        self.rows.append({**row, "grad_norm": math.nan, "clipped": False, "lr": self.spec["lr"]})
        return row

    def log_gradients(self, spectra: bool) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            return  # the next loss is NaN/Inf: the run is about to be recorded as diverged
        explicit = isinstance(self.model, VanillaRNN)  # the lecture's recursion; any other cell by autograd
        tables = (gradients.log_step if explicit else decompose.log_step)(
            self.model, self.log_batch, self.spec["task"], self.spec["targets"], self.spec["jacobian_samples"], spectra
        )
        for name, frame in tables.items():
            self.logs[name].append(frame.assign(step=self.step))

    def draw_batch(self) -> tuple:
        """The next training batch, drawn from this run's own sampler generator."""
        x, y, mask = self.train_set
        index = torch.randint(x.shape[0], (self.spec["batch_size"],), generator=self.sampler).to(self.device)
        return x[index], y[index], mask[index]

    def record_train(self, loss: float, batch_metrics: dict, norm: float) -> bool:
        """Append this step's train row; False when its loss or gradient norm is NaN/Inf."""
        clip = self.spec["clip"]
        self.rows.append(
            {
                "step": self.step,
                "split": "train",
                "loss": loss,
                **batch_metrics,
                "grad_norm": norm,
                "clipped": clip is not None and norm > clip,
                "lr": self.spec["lr"],
            }
        )
        return math.isfinite(loss) and math.isfinite(norm)

    def train_step(self) -> bool:
        """One update; False when the loss or the gradient is NaN/Inf (the update is then not applied)."""
        x, y, mask = self.draw_batch()
        self.optimizer.zero_grad()
        outputs = self.model(x)
        loss = masked_loss(self.spec["task"], outputs, y, mask)
        loss.backward()
        params = list(self.model.parameters())
        norm = grad_norm(params)
        if not self.record_train(float(loss.detach()), metrics(self.spec["task"], outputs, y, mask), norm):
            return False
        if self.rows[-1]["clipped"]:  # Pascanu et al. 2013, Algorithm 1: g <- threshold * g / ||g||
            for p in params:
                p.grad.mul_(self.spec["clip"] / norm)
        self.optimizer.step()
        return True

    def run(self) -> dict:
        """Train to the end or to divergence, writing every run file; returns status.json's content."""
        self.start()
        while self.step < self.spec["steps"]:
            self.before_step()
            if not self.end_step(self.train_step()):
                break
        return self.finish()

    def start(self) -> None:
        """Write spec.json, then resume from the checkpoint or save the initial model."""
        write_json(self.out_dir / "spec.json", self.spec)
        # Before any resume: Snakemake may have deleted model_init.pt of a killed job, and the model built from
        # the seed is exactly the initial one.
        self._save_model("model_init.pt")
        if self.try_resume():
            self.progress(f"resumed at step {self.step} from {self.checkpoint_path.name}")
        self.clock = (time.perf_counter(), self.step)

    def before_step(self) -> None:
        """The gradient logging and evaluation due at this step, before its update."""
        if self.step in self.logged:
            self.log_gradients(spectra=self.logged[self.step])
        if self.step % self.spec["eval_every"] == 0:
            self.report(self.evaluate())

    def end_step(self, updated: bool) -> bool:
        """Count the update and checkpoint when due, or record the divergence (False: the run stops)."""
        if not updated:
            self.diverged_at = self.step
            return False
        self.step += 1
        if self.step % self.spec["checkpoint_every"] == 0 and self.step < self.spec["steps"]:
            self.save_checkpoint()
        return True

    def finish(self) -> dict:
        """Final logging and evaluation of a run that ended or diverged; writes every file, status.json last."""
        if self.diverged_at is None:
            self.log_gradients(spectra=True)
            final = self.evaluate()
            if not math.isfinite(final["loss"]):
                self.diverged_at = self.step  # the last update was finite but sent the test loss to NaN/Inf
        if self.diverged_at is not None:
            final = {"loss": math.nan, "metric": math.nan, "metric_name": self.rows[-1]["metric_name"]}
        self._save_model("model_final.pt")
        self._write_tables()
        status = {
            "status": "completed" if self.diverged_at is None else "diverged",
            "steps_done": self.step,
            "diverged_at": self.diverged_at,
            "final_loss": final["loss"],
            "final_metric": final["metric"],
            "metric_name": final["metric_name"],
            "baseline_loss": self.baseline,
            "sha256": {name: file_sha256(self.out_dir / name) for name in RUN_FILES if name != "status.json"},
            "provenance": provenance(str(self.device), torch.get_num_threads()),
        }
        write_json(self.out_dir / "status.json", status)  # last: its presence means the run is complete
        self.checkpoint_path.unlink(missing_ok=True)
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

    def model_state(self) -> dict:
        """The model's tensors, each owning its storage: a parameter may be a view into a stack of runs
        (:mod:`rnngrad.batched`), and torch.save would write a view's whole storage."""
        return {key: value.detach().clone() for key, value in self.model.state_dict().items()}

    def _save_model(self, name: str) -> None:
        state = {key: value.cpu() for key, value in self.model_state().items()}
        atomic_write(self.out_dir / name, lambda tmp: save_torch(state, tmp))

    def _write_tables(self) -> None:
        write_parquet(self.out_dir / "metrics.parquet", pd.DataFrame(self.rows))
        for name in LOG_TABLES:
            frames = self.logs[name]
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"step": []})
            columns = ["step", *(c for c in frame.columns if c != "step")]
            write_parquet(self.out_dir / f"{name}.parquet", frame[columns])


def train(spec: dict, out_dir: str | Path) -> dict:
    """Run (or resume) one training run on the spec's datasets and write its files into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    return Run(spec, out_dir).run()


def completed_status(spec: dict, out_dir: str | Path) -> dict | None:
    """status.json of a finished run of this spec, by this training code, with every file intact; else None."""
    out_dir = Path(out_dir)
    try:
        status, saved_spec = read_json(out_dir / "status.json"), read_json(out_dir / "spec.json")
    except (OSError, ValueError):
        return None
    current = saved_spec == spec and status.get("provenance", {}).get("code_sha256") == code_sha256()
    return status if current and not mismatched_files(out_dir, status["sha256"]) else None


def train_group(specs: list[dict], runs_dir: str | Path, threads: int = 1, stack: bool = True) -> dict:
    """Train a group of runs in one process, each into ``runs_dir/{run_id}``: stacked on a leading axis where
    :func:`rnngrad.batched.can_batch` says that is faster (and ``stack`` allows it), else one after another.

    Members already complete (same spec, same training code, files intact) are kept, so a group killed part-way
    resumes where it stopped: finished members are kept, interrupted ones resume from their checkpoints.
    Returns the group's status: each member's outcome, whether it was kept, the path taken and the wall time.
    """
    from rnngrad.batched import can_batch, train_batched  # it builds on Run: imported here, not at the top

    torch.set_num_threads(threads)
    out_dirs = [Path(runs_dir) / spec["run_id"] for spec in specs]
    kept = {i: completed_status(spec, out_dir) for i, (spec, out_dir) in enumerate(zip(specs, out_dirs, strict=True))}
    todo = [i for i, status in kept.items() if status is None]
    batched = stack and can_batch([specs[i] for i in todo])
    print(f"group of {len(specs)} runs: {len(specs) - len(todo)} complete and kept, {len(todo)} to train "
          f"{'stacked (batched path)' if batched else 'one after another'}", flush=True)  # fmt: skip
    start = time.perf_counter()
    if batched:
        trained = train_batched([specs[i] for i in todo], [out_dirs[i] for i in todo])
    else:
        trained = []
        for position, i in enumerate(todo, start=1):
            print(f"group member {position}/{len(todo)}: {specs[i]['run_id']}", flush=True)
            trained.append(train(specs[i], out_dirs[i]))
    statuses = {**kept, **dict(zip(todo, trained, strict=True))}
    members = [
        {"run_id": spec["run_id"], "status": statuses[i]["status"], "kept": kept[i] is not None}
        for i, spec in enumerate(specs)
    ]
    seconds = round(time.perf_counter() - start, 3)
    return {"runs": members, "path": "batched" if batched else "sequential", "seconds": seconds, "threads": threads}
