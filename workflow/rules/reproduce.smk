# Reproductions (config/reproduce/): the config's published claims scored on its experiments' tables, one row a
# claim with its verdict (rnngrad.reproduce). The report goes beside the results and beside the committed figures.


rule reproduction:
    input:
        published=config["reproduce"]["published"],
        code="src/rnngrad/reproduce.py",
        tables=[
            f"{RESULTS}/tables/{experiment}/{table}.parquet"
            for experiment in sorted(set(config["reproduce"]["claims"].values()))
            for table in rnngrad_contract.TABLES
        ],
    output:
        results=f"{RESULTS}/reproduction.md",
        figures=f"{FIGURES_DIR}/reproduction.md",
    log:
        f"logs/{NAME}/reproduction.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        title=NAME,
        claims=[
            f"{claim}={RESULTS}/tables/{experiment}"
            for claim, experiment in config["reproduce"]["claims"].items()
        ],
        success=json.dumps(
            rnngrad_tasks.success_criteria(config["tasks"]), sort_keys=True
        ),
    shell:
        "python -m rnngrad reproduce --published {input.published} --title {params.title}"
        " --success '{params.success}' --out {output.results} --out {output.figures}"
        " {params.claims} > {log} 2>&1"
