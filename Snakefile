# rnngrad: configs -> datasets -> training with gradient logging -> tidy tables -> figures and a report.
# Every job is one `rnngrad` CLI call; see workflow/rules/*.smk and ../shared/DESIGN.md.
import gc
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# Planning builds a few million long-lived objects (jobs, files, wildcards: 3763 jobs for the paper grid), and
# CPython's default thresholds re-scan all of them in a dozen full collections: about 1.8 s of that plan, with
# nothing to free. Young objects are still collected as often as before; only full collections are rarer.
gc.set_threshold(*gc.get_threshold()[:2], 1000)

# The plan reads the grid, the run files and the figures' tables from the same src/ as the jobs, not from
# whichever rnngrad the environment has installed (another checkout, for an editable install).
sys.path.insert(0, f"{workflow.basedir}/src")

import rnngrad.config as rnngrad_config
import rnngrad.groups as rnngrad_groups
import rnngrad.contract as rnngrad_contract
import rnngrad.tasks as rnngrad_tasks

# A --configfile replaces the default config instead of being merged into it.
if not config:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
SPECS = rnngrad_config.expand(config)
rnngrad_config.check(config, SPECS)
# Jobs run `python -m rnngrad` from this checkout's src/, so the same command works in the venv, in an activated
# conda env, and in each rule's own env under --use-conda (which has the dependencies, not the package). Then come
# the folders of the users' cells (cells_path) and the PYTHONPATH the job inherits (locally snakemake's; on SLURM
# the submitting shell's, which the slurm plugin passes with sbatch --export=ALL), where the check found them.
JOB_PYTHONPATH = ":".join(
    [f"{workflow.basedir}/src", *rnngrad_config.cell_folders(config)]
)
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(JOB_PYTHONPATH)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

NAME = config["name"]  # every output of this config lives under its own root
RESULTS = rnngrad_config.results_root(config)
FIGURES_DIR = rnngrad_config.figures_root(config)
# The unit of execution: one training job per group of runs (rnngrad.groups); the plan files it writes give
# each job its specs and each tables job its run folders, so no command line grows with the grid.
GROUPS = rnngrad_groups.group_specs(SPECS, **config["groups"])
PLAN_SHA256 = rnngrad_groups.write_plan(GROUPS, RESULTS)
# figure -> the experiments whose tables it draws (none for theory figures)
FIGURES = {
    name: rnngrad_config.figure_experiments(drawn)
    for name, drawn in config["figures"].items()
}


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


if "reproduce" in config:

    include: "workflow/rules/reproduce.smk"


rule all:
    default_target: True
    input:
        expand(f"{FIGURES_DIR}/{{figure}}.{{ext}}", figure=FIGURES, ext=["png", "pdf"]),
        f"{FIGURES_DIR}/manifest.json",
        f"{RESULTS}/summary.md",
        (
            [
                f"{RESULTS}/reproduction.md",
                f"{FIGURES_DIR}/verdicts.json",
                f"{FIGURES_DIR}/tables",
            ]
            if "reproduce" in config
            else []
        ),
