"""``rnngrad <stage> ...``: every step of the pipeline, runnable by hand with the same arguments Snakemake uses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnngrad import config as configuration
from rnngrad import tables, tasks
from rnngrad.figures import figure_module


def _spec(value: str) -> dict:
    """A run spec given inline as JSON or as @path to a JSON file."""
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    return json.loads(text)


def _param(item: str) -> tuple[str, int]:
    """A task parameter given as NAME=VALUE (task parameters are integers)."""
    name, _, value = item.partition("=")
    return name, int(value)


def cmd_generate(args) -> None:
    meta = tasks.generate_file(args.out, args.task, args.T, args.n, args.seed, args.variant, **dict(args.param))
    print(f"wrote {args.out}: baseline loss {meta['baseline_loss']:.4f}")


def cmd_train(args) -> None:
    from rnngrad.train import train

    status = train(_spec(args.spec), args.out_dir)
    print(json.dumps(status, sort_keys=True))


def cmd_tables(args) -> None:
    for name, path in tables.write_tables(args.run_dirs, args.out_dir, args.success).items():
        print(f"wrote {name}: {path}")


def cmd_figure(args) -> None:
    module = figure_module(args.name)
    frames = tables.read_tables(args.tables_dir, module.TABLES) if module.TABLES else {}
    module.render(frames, Path(args.out))
    print(f"wrote {args.out} and its PDF")


def cmd_summary(args) -> None:
    from rnngrad.summary import write_summary

    print(f"wrote {write_summary(args.tables_dirs, args.out)}")


def cmd_manifest(args) -> None:
    from rnngrad.manifest import write_manifest

    figures = dict(item.split("=", 1) for item in args.figures)
    write_manifest(args.out, args.config_sha256, {k: v or None for k, v in figures.items()}, Path(args.out).parent)
    print(f"wrote {args.out}")


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

    tr = stages.add_parser("train", help="train one run from its resolved spec")
    tr.add_argument("--spec", required=True, help="the run spec as JSON, or @file.json")
    tr.add_argument("--out-dir", required=True)
    tr.set_defaults(func=cmd_train)

    tab = stages.add_parser("tables", help="aggregate run directories into tidy parquet tables")
    tab.add_argument("--out-dir", required=True)
    tab.add_argument(
        "--success", required=True, type=json.loads, help="success threshold per task as JSON, e.g. '{\"copy\": 0.99}'"
    )
    tab.add_argument("run_dirs", nargs="+")
    tab.set_defaults(func=cmd_tables)

    fig = stages.add_parser("figure", help="render one figure (PNG and PDF) from an experiment's tables")
    fig.add_argument("name")
    fig.add_argument("--tables-dir", help="results/tables/{experiment} (figures drawn from tables only)")
    fig.add_argument("--out", required=True, help="PNG path; the PDF is written beside it")
    fig.set_defaults(func=cmd_figure)

    summ = stages.add_parser("summary", help="markdown summary: regimes, outcomes, fitted rates vs theory")
    summ.add_argument("--out", required=True)
    summ.add_argument("tables_dirs", nargs="+", help="results/tables/{experiment} folders")
    summ.set_defaults(func=cmd_summary)

    man = stages.add_parser("manifest", help="list every figure with its sha256 and the config hash")
    man.add_argument("--config-sha256", required=True)
    man.add_argument("--out", required=True, help="figures/manifest.json (figures are read beside it)")
    man.add_argument("figures", nargs="+", help="name=experiment (empty experiment for theory figures)")
    man.set_defaults(func=cmd_manifest)

    val = stages.add_parser("validate", help="check a config and count its runs")
    val.add_argument("config")
    val.set_defaults(func=cmd_validate)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (configuration.ConfigError, tasks.DatasetError, tables.RunFileError) as err:
        print(f"rnngrad {args.stage}: {err}", file=sys.stderr)
        return 2
    return 0
