# Training: one job per group of runs (rnngrad.groups); the group's resolved specs reach the job as a file whose
# sha256 is a param, so a changed hyperparameter re-runs exactly the groups it touches.
# Each run still writes its own folder, results/{name}/runs/{experiment}/{run_id}/.


rule train:
    input:
        unpack(group_inputs),
    output:
        f"{RESULTS}/groups/{{experiment}}/{{group}}/status.json",
    log:
        f"logs/{NAME}/train/{{experiment}}/{{group}}.log",
    benchmark:
        f"benchmarks/{NAME}/train/{{experiment}}/{{group}}.tsv"
    wildcard_constraints:
        experiment="[A-Za-z0-9_]+",
        group=".+",
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        specs=lambda wc: rnngrad_groups.specs_path(RESULTS, wc.experiment, wc.group),
        specs_sha256=lambda wc: PLAN_SHA256[(wc.experiment, wc.group)],
        runs_dir=lambda wc: f"{RESULTS}/runs/{wc.experiment}",
    # exec: Python replaces the shell, so that a stop signal sent to the job's processes (a time limit) finds
    # training, which checkpoints and exits as failed, instead of a shell that dies at once and leaves it orphaned
    shell:
        "exec python -m rnngrad train --specs {params.specs} --runs-dir {params.runs_dir} --threads {threads}"
        " --out {output} > {log} 2>&1"
