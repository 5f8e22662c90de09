# Tables: concatenate an experiment's runs into tidy parquet tables with every spec field as a column.


rule tables:
    input:
        lambda wc: [f"{d}/status.json" for d in experiment_run_dirs(wc.experiment)],
    output:
        **{
            name: f"results/tables/{{experiment}}/{name}.parquet"
            for name in rnngrad_contract.TABLES
        },
    log:
        "logs/tables/{experiment}.log",
    wildcard_constraints:
        experiment="[A-Za-z0-9_]+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        run_dirs=lambda wc: experiment_run_dirs(wc.experiment),
        success=json.dumps(rnngrad_tasks.success_thresholds(config["tasks"])),
    shell:
        "python -m rnngrad tables --out-dir results/tables/{wildcards.experiment} --success '{params.success}'"
        " {params.run_dirs} > {log} 2>&1"


rule summary:
    input:
        expand(
            "results/tables/{experiment}/{table}.parquet",
            experiment=config["experiments"],
            table=["runs", "products", "gradients", "spectrum"],
        ),
    output:
        "results/summary.md",
    log:
        "logs/summary.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        tables_dirs=expand(
            "results/tables/{experiment}", experiment=config["experiments"]
        ),
    shell:
        "python -m rnngrad summary --out {output} {params.tables_dirs} > {log} 2>&1"
