"""The data contract: the files every run writes, the tables each experiment gets, the spec columns and the
dataset paths, named once.

A module of constants without imports, so that the training code, the table builder and the Snakefile read them
without pulling in the config's YAML and schema machinery or the figures.
"""

SPEC_COLUMNS = (  # the spec fields every table row carries
    "experiment", "run_id", "task", "variant", "T", "model", "activation", "init", "scale", "forget_bias", "clip",
    "regularizer", "input_init", "seed", "hidden", "optimizer", "lr", "batch_size", "steps", "gamma", "label",
)  # fmt: skip
LOG_TABLES = ("gradients", "jacobians", "products", "spectrum")
RUN_FILES = (
    "spec.json",
    "metrics.parquet",
    *(f"{name}.parquet" for name in LOG_TABLES),
    "status.json",
    "model_init.pt",
    "model_final.pt",
)
STREAMED_TABLES = ("metrics", *LOG_TABLES)  # a row a step or more: built run by run
TABLES = ("runs", "lengths", *STREAMED_TABLES)  # lengths: each run's final test at its trained and extra lengths
METHODS_OFF = {  # the spec keys of the papers' methods as a run without any of them has them (rnngrad.config)
    "regularizer": 0,
    "input_init": "fan_in",
    "readout_init": "fan_in",
    "clip_mode": "norm",
    "rmsprop_eps": 1e-8,
    "rmsprop_init": 0.0,
    "init_nonzero": 15,
    "fresh_data": False,
    "until_solved": None,
    "train_lengths": None,
    "test_lengths": None,
    "eval_lengths": [],
    "eval_data": [],
    "error_rule": None,
}


# The papers' methods that train stacked where a config keeps groups.stack_methods on (the default): rnngrad.groups
# marks the specs, rnngrad.batched stacks them.
STACK_METHODS = ("regularizer", "fresh_data", "until_solved", "eval_lengths", "train_lengths")


def data_path(results: str, task: str, variant: str, T: int | list[int], split: str, seed: int) -> str:  # noqa: N803
    """A dataset's path under a config's output root (results/{name}); ``T`` a pair [T_min, T_max] names a set of
    mixed lengths (folder ``T{T_min}-{T_max}``)."""
    folder = f"T{T[0]}-{T[1]}" if isinstance(T, list | tuple) else f"T{T}"
    return f"{results}/data/{task}/{variant}/{folder}/{split}-seed{seed}.npz"
