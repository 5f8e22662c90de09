"""``rnngrad <stage> ...``: every step of the pipeline, runnable by hand with the same arguments Snakemake uses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnngrad import config as configuration
from rnngrad import tables, tasks
from rnngrad.figures import figure_module
from rnngrad.io import DiskFullError, FolderLockedError
from rnngrad.reproduce import ClaimError
from rnngrad.stopping import Stopped

# Errors a user can fix (a config, a dataset, a run file, a claim, a full disk, a busy run folder): one line, no
# traceback.
USER_ERRORS = (
    configuration.ConfigError, tasks.DatasetError, tables.RunFileError, ClaimError, DiskFullError, FolderLockedError,
)  # fmt: skip


def _param(item: str) -> tuple[str, int]:
    """A task parameter given as NAME=VALUE (task parameters are integers)."""
    name, _, value = item.partition("=")
    return name, int(value)


def cmd_generate(args) -> None:
    mixed = {} if args.min_T is None else {"min_T": args.min_T}
    meta = tasks.generate_file(
        args.out, args.task, args.T, args.n, args.seed, args.variant, **mixed, **dict(args.param)
    )
    print(f"wrote {args.out}: baseline loss {meta['baseline_loss']:.4f}")


def cmd_train(args) -> None:
    from rnngrad.io import read_json, write_json
    from rnngrad.stopping import handled
    from rnngrad.train import train_group

    with handled():  # SIGTERM/SIGUSR1: checkpoint every active run, then exit 128 + signal (failed)
        status = train_group(read_json(args.specs), args.runs_dir, args.threads, stack=not args.sequential)
    if args.out:
        write_json(args.out, status)
    print(json.dumps(status, sort_keys=True))


def cmd_tables(args) -> None:
    from rnngrad.groups import read_run_list

    run_dirs = [*args.run_dirs, *(read_run_list(args.run_list) if args.run_list else [])]
    if not run_dirs:
        raise configuration.ConfigError("give run folders, or --run-list FILE (one a line)")
    for name, path in tables.write_tables(run_dirs, args.out_dir, args.success).items():
        print(f"wrote {name}: {path}")


def cmd_stale(args) -> None:
    stale = tables.stale_runs(args.results)
    for run_dir, code in stale:
        print(f"{run_dir}\tcode {code or 'unknown'}")
    print(f"{len(stale)} runs under {args.results} were made by other training code", file=sys.stderr)


def cmd_figure(args) -> None:
    import pandas as pd

    module = figure_module(args.name)
    if module.TABLES and not args.tables_dir:
        raise configuration.ConfigError(f"figure {args.name} draws {module.TABLES}: give --tables-dir")
    drawn = [tables.read_tables(tables_dir, module.TABLES) for tables_dir in args.tables_dir]
    frames = {name: pd.concat([frames[name] for frames in drawn], ignore_index=True) for name in module.TABLES}
    module.render(frames, Path(args.out))
    print(f"wrote {args.out} and its PDF")


def cmd_summary(args) -> None:
    from rnngrad.summary import write_summary

    print(f"wrote {write_summary(args.tables_dirs, args.out)}")


def cmd_manifest(args) -> None:
    from rnngrad.manifest import write_manifest

    figures = dict(item.split("=", 1) for item in args.figures)
    experiments = {name: (drawn.split(",") if "," in drawn else drawn) or None for name, drawn in figures.items()}
    runs_tables = {Path(path).parent.name: Path(path) for path in args.runs}
    write_manifest(args.out, args.config_sha256, experiments, Path(args.out).parent, runs_tables)
    print(f"wrote {args.out}")


def cmd_cost(args) -> None:
    from rnngrad.cost import estimate, report

    config = configuration.load(args.config)
    print(report(estimate(config, configuration.expand(config))))


def write_derived_config(config: dict, out: str) -> None:
    """Validate a config derived from another (a miniature, a paper's budget) and write it as YAML."""
    import yaml

    configuration.validate(config)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"wrote {out}: {len(configuration.expand(config))} runs, output root results/{config['name']}/")


def cmd_miniature(args) -> None:
    write_derived_config(configuration.miniature(configuration.load(args.config), args.steps), args.out)


def cmd_reproduce(args) -> None:
    from rnngrad.reproduce import write_report

    claims = dict(item.split("=", 1) for item in args.claims)
    others = dict(item.split("=", 1) for item in args.tier_verdicts)
    paper_cost = ""
    if args.paper_cost:  # the totals line of `rnngrad cost` on the paper tier's config
        total = next(line for line in Path(args.paper_cost).read_text().splitlines() if line.startswith("Total:"))
        paper_cost = f"The paper tier's estimated cost ({args.paper_cost}, `rnngrad cost`): {total}"
    text = write_report(
        args.published, claims, args.title, args.out, args.success, args.tier, args.verdicts, others, paper_cost,
        args.keep_tables, args.test_sequences,
    )  # fmt: skip
    print(text, end="")


def cmd_power(args) -> None:
    from rnngrad.reproduce import power_table

    print(power_table(args.published, args.claims), end="")


def cmd_tier(args) -> None:
    write_derived_config(configuration.tier_config(configuration.load(args.config), args.tier), args.out)


def cmd_validate(args) -> None:
    config = configuration.load(args.config)
    specs = configuration.expand(config)
    print(f"{args.config}: valid; {len(specs)} runs in {len(config['experiments'])} experiments")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rnngrad", description=__doc__)
    stages = top.add_subparsers(dest="stage", required=True)

    gen = stages.add_parser("generate", help="generate one dataset of a task (.npz + .json sidecar)")
    gen.add_argument("--task", required=True, choices=tasks.TASKS)
    gen.add_argument("--variant", required=True)
    gen.add_argument("--T", type=int, required=True, help="sequence length parameter T")
    gen.add_argument(
        "--min-T", dest="min_T", type=int, help="mixed lengths: each sequence's T drawn uniformly from [min_T, T]"
    )
    gen.add_argument("--n", type=int, required=True, help="number of sequences")
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument(
        "--param",
        action="append",
        default=[],
        type=_param,
        metavar="NAME=VALUE",
        help="a task parameter, e.g. copy_len=10",
    )
    gen.add_argument("--out", required=True)
    gen.set_defaults(func=cmd_generate)

    tr = stages.add_parser("train", help="train a group of runs (a JSON list of resolved specs) in one process")
    tr.add_argument("--specs", required=True, help="JSON file: the group's run specs (groups/.../specs.json)")
    tr.add_argument("--runs-dir", required=True, help="each run is written to RUNS_DIR/{run_id}")
    tr.add_argument("--threads", type=int, default=1, help="torch threads (the rule's threads:)")
    tr.add_argument("--sequential", action="store_true", help="never stack runs (the batched path), one after another")
    tr.add_argument("--out", help="write the group's status (each member's outcome and wall time) here")
    tr.set_defaults(func=cmd_train)

    tab = stages.add_parser("tables", help="aggregate run directories into tidy parquet tables")
    tab.add_argument("--out-dir", required=True)
    tab.add_argument(
        "--success", required=True, type=json.loads, help="success threshold per task as JSON, e.g. '{\"copy\": 0.99}'"
    )
    tab.add_argument("--run-list", help="a file of run folders, one a line (groups/{experiment}/runs.txt)")
    tab.add_argument("run_dirs", nargs="*")
    tab.set_defaults(func=cmd_tables)

    stale = stages.add_parser("stale", help="list the runs made by training code other than this checkout's")
    stale.add_argument("results", help="a config's output root, e.g. results/default")
    stale.set_defaults(func=cmd_stale)

    fig = stages.add_parser("figure", help="render one figure (PNG and PDF) from an experiment's tables")
    fig.add_argument("name")
    fig.add_argument(
        "--tables-dir",
        action="append",
        default=[],
        help="results/tables/{experiment} (figures drawn from tables only); repeated: their tables concatenated",
    )
    fig.add_argument("--out", required=True, help="PNG path; the PDF is written beside it")
    fig.set_defaults(func=cmd_figure)

    summ = stages.add_parser("summary", help="markdown summary: regimes, outcomes, fitted rates vs theory")
    summ.add_argument("--out", required=True)
    summ.add_argument("tables_dirs", nargs="+", help="results/tables/{experiment} folders")
    summ.set_defaults(func=cmd_summary)

    man = stages.add_parser("manifest", help="list every figure with its sha256 and the config hash")
    man.add_argument("--config-sha256", required=True)
    man.add_argument("--out", required=True, help="figures/{name}/manifest.json (figures are read beside it)")
    man.add_argument("--runs", nargs="*", default=[], help="tables/{experiment}/runs.parquet of each drawn experiment")
    man.add_argument(
        "figures", nargs="*", help="name=experiment or name=exp1,exp2 (empty experiment for theory figures)"
    )
    man.set_defaults(func=cmd_manifest)

    cost = stages.add_parser(
        "cost", help="estimate a config's CPU-hours and longest job from event costs timed here (long T extrapolated)"
    )
    cost.add_argument("config")
    cost.set_defaults(func=cmd_cost)

    mini = stages.add_parser("miniature", help="the same grid at tiny sizes (2 steps), to run it end to end first")
    mini.add_argument("config")
    mini.add_argument("--out", required=True, help="the tiny config's YAML path")
    mini.add_argument(
        "--steps", type=int, default=2, help="steps a run (default 2); more to rehearse a stop between checkpoints"
    )
    mini.set_defaults(func=cmd_miniature)

    rep = stages.add_parser("reproduce", help="score published claims against experiment tables: the verdict table")
    rep.add_argument("--published", required=True, help="the claims file (config/reproduce/published.yaml)")
    rep.add_argument("--title", required=True, help="the report's title (the config's name)")
    rep.add_argument("--out", required=True, action="append", help="a markdown path to write (repeatable)")
    rep.add_argument(
        "--success", type=json.loads, help="the config's success criterion per task as JSON (the sensitivity line)"
    )
    rep.add_argument("--tier", default="reduced", choices=("reduced", *configuration.TIERS), help="this report's tier")
    rep.add_argument("--verdicts", help="a JSON path for this tier's verdicts (other tiers' ladders read it)")
    rep.add_argument(
        "--tier-verdicts", action="append", default=[], help="TIER=PATH: another tier's verdicts.json, where it exists"
    )
    rep.add_argument("--paper-cost", help="`rnngrad cost`'s report on the paper tier's config (make reproduce-cost)")
    rep.add_argument("--keep-tables", help="a folder for a copy of the tables the verdicts read (committed per tier)")
    rep.add_argument("--test-sequences", type=int, help="sequences in each test set (data.n_test): error counts")
    rep.add_argument("claims", nargs="+", help="CLAIM_ID=TABLES_DIR (results/{name}/tables/{experiment})")
    rep.set_defaults(func=cmd_reproduce)

    pow_ = stages.add_parser("power", help="the seeds each claim needs for 80% power under its rule")
    pow_.add_argument("published", help="the claims file (config/reproduce/published.yaml)")
    pow_.add_argument("claims", nargs="*", help="claim ids (default: every claim)")
    pow_.set_defaults(func=cmd_power)

    tier = stages.add_parser("tier", help="a reproduction config at its long or paper budget (reproduce.long|paper)")
    tier.add_argument("config")
    tier.add_argument("tier", choices=configuration.TIERS)
    tier.add_argument("--out", required=True, help="the derived config's YAML path")
    tier.set_defaults(func=cmd_tier)

    val = stages.add_parser("validate", help="check a config and count its runs")
    val.add_argument("config")
    val.set_defaults(func=cmd_validate)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as err:
        print(f"rnngrad {args.stage}: {err}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(f"rnngrad {args.stage}: {stop}", file=sys.stderr)
        return stop.exit_status
    return 0
