# Tables: concatenate an experiment's runs into tidy parquet tables with every spec field as a column.


rule tables:
    input:
        lambda wc: EXPERIMENT_GROUPS[wc.experiment],
    output:
        **{
            name: f"{RESULTS}/tables/{{experiment}}/{name}.parquet"
            for name in rnngrad_contract.TABLES
        },
    log:
        f"logs/{NAME}/tables/{{experiment}}.log",
    benchmark:
        f"benchmarks/{NAME}/tables/{{experiment}}.tsv"
    wildcard_constraints:
        experiment="[A-Za-z0-9_]+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        run_list=lambda wc: rnngrad_groups.run_list_path(RESULTS, wc.experiment),
        run_list_sha256=lambda wc: PLAN_SHA256[wc.experiment],
        out_dir=lambda wc: f"{RESULTS}/tables/{wc.experiment}",
        success=json.dumps(
            rnngrad_tasks.success_criteria(config["tasks"]), sort_keys=True
        ),
    shell:
        "python -m rnngrad tables --out-dir {params.out_dir} --run-list {params.run_list}"
        " --success '{params.success}' > {log} 2>&1"


rule summary:
    input:
        expand(
            f"{RESULTS}/tables/{{experiment}}/{{table}}.parquet",
            experiment=config["experiments"],
            table=["runs", "products", "gradients", "spectrum"],
        ),
    output:
        f"{RESULTS}/summary.md",
    log:
        f"logs/{NAME}/summary.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        tables_dirs=expand(
            f"{RESULTS}/tables/{{experiment}}", experiment=config["experiments"]
        ),
    shell:
        "python -m rnngrad summary --out {output} {params.tables_dirs} > {log} 2>&1"
