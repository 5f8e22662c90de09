# Figures: one rule per figure named in the config; each depends only on the tables it draws, its own module and
# the shared style, so changing one figure's code re-renders that figure alone.
from rnngrad.figures import figure_module
from rnngrad.manifest import config_sha256

for figure_name, figure_experiment in FIGURES.items():
    figure_tables = figure_module(figure_name).TABLES

    rule:
        name:
            f"figure_{figure_name}"
        input:
            code=[
                f"src/rnngrad/figures/{figure_name}.py",
                "src/rnngrad/figures/common.py",
                "src/rnngrad/figures/style.py",
            ],
            tables=[
                f"results/tables/{figure_experiment}/{table}.parquet"
                for table in figure_tables
            ],
        output:
            png=report(
                f"figures/{figure_name}.png",
                caption=f"../report/{figure_name}.rst",
                category="Figures",
            ),
            pdf=f"figures/{figure_name}.pdf",
        log:
            f"logs/figures/{figure_name}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            name=figure_name,
            tables_dir=(
                f"--tables-dir results/tables/{figure_experiment}"
                if figure_tables
                else ""
            ),
        shell:
            "rnngrad figure {params.name} {params.tables_dir} --out {output.png} > {log} 2>&1"


rule manifest:
    input:
        expand("figures/{figure}.{ext}", figure=FIGURES, ext=["png", "pdf"]),
    output:
        "figures/manifest.json",
    log:
        "logs/figures/manifest.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config_sha256=config_sha256(config),
        figures=[f"{name}={experiment or ''}" for name, experiment in FIGURES.items()],
    shell:
        "rnngrad manifest --config-sha256 {params.config_sha256} --out {output} {params.figures} > {log} 2>&1"
