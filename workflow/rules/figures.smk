# Figures: one rule per figure named in the config; each depends only on the tables it draws, its own module and
# the shared style, so changing one figure's code re-renders that figure alone.
from rnngrad.figures import figure_tables, module_name
from rnngrad.manifest import config_sha256

for figure_name, figure_experiments in FIGURES.items():
    tables_drawn = figure_tables(figure_name)

    rule:
        name:
            f"figure_{figure_name}"
        input:
            code=[
                f"src/rnngrad/figures/{module_name(figure_name)}.py",
                "src/rnngrad/figures/common.py",
                "src/rnngrad/figures/style.py",
            ],
            tables=[
                f"{RESULTS}/tables/{experiment}/{table}.parquet"
                for experiment in (figure_experiments if tables_drawn else [])
                for table in tables_drawn
            ],
        output:
            png=report(
                f"{FIGURES_DIR}/{figure_name}.png",
                caption=f"../report/{module_name(figure_name)}.rst",
                category="Figures",
            ),
            pdf=f"{FIGURES_DIR}/{figure_name}.pdf",
        log:
            f"logs/{NAME}/figures/{figure_name}.log",
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            name=figure_name,
            tables_dir=[
                f"--tables-dir {RESULTS}/tables/{experiment}"
                for experiment in (figure_experiments if tables_drawn else [])
            ],
        shell:
            "python -m rnngrad figure {params.name} {params.tables_dir} --out {output.png} > {log} 2>&1"


rule manifest:
    input:
        figures=expand(
            f"{FIGURES_DIR}/{{figure}}.{{ext}}", figure=FIGURES, ext=["png", "pdf"]
        ),
        runs=[
            f"{RESULTS}/tables/{experiment}/runs.parquet"
            for experiment in sorted({e for drawn in FIGURES.values() for e in drawn})
        ],
    output:
        f"{FIGURES_DIR}/manifest.json",
    log:
        f"logs/{NAME}/figures/manifest.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config_sha256=config_sha256(config),
        figures=[f"{name}={','.join(drawn)}" for name, drawn in FIGURES.items()],
    shell:
        "python -m rnngrad manifest --config-sha256 {params.config_sha256} --runs {input.runs} --out {output}"
        " {params.figures} > {log} 2>&1"
