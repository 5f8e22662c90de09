# Training: one job per run of every experiment grid; the whole resolved spec reaches the job as a param, so a
# changed hyperparameter re-runs exactly the runs it touches.


rule train:
    input:
        unpack(run_data),
    output:
        **{
            name.replace(".", "_"): f"results/runs/{{experiment}}/{{run}}/{name}"
            for name in rnngrad_contract.RUN_FILES
        },
    log:
        "logs/train/{experiment}/{run}.log",
    benchmark:
        "benchmarks/train/{experiment}/{run}.tsv"
    wildcard_constraints:
        experiment="[A-Za-z0-9_]+",
        run=".+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        spec=lambda wc: json.dumps(run_spec(wc), sort_keys=True),
        out_dir="results/runs/{experiment}/{run}",
    shell:
        "python -m rnngrad train --spec '{params.spec}' --out-dir {params.out_dir} > {log} 2>&1"
