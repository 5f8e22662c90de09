# Shared helpers of the rule files (kept apart from the rules, as Snakemake's linter asks).


def run_spec(wildcards):
    return RUNS[(wildcards.experiment, wildcards.run)]


def run_data(wildcards):
    """The run's train and test datasets (one input function: Snakemake inspects each one per job)."""
    spec = run_spec(wildcards)
    return {"train": spec["train_data"], "test": spec["test_data"]}


def experiment_run_dirs(experiment):
    return [f"results/runs/{exp}/{run}" for exp, run in RUNS if exp == experiment]
