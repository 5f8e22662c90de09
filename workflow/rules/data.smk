# Datasets: one .npz (+ .json sidecar) per (task, variant, T, split, seed), under the config's own root; a T of
# the form {T_min}-{T_max} is a set of mixed lengths (train.test_lengths), each sequence's T drawn from that range.


rule generate:
    output:
        npz=f"{RESULTS}/data/{{task}}/{{variant}}/T{{T}}/{{split}}-seed{{seed}}.npz",
        meta=f"{RESULTS}/data/{{task}}/{{variant}}/T{{T}}/{{split}}-seed{{seed}}.json",
    log:
        f"logs/{NAME}/data/{{task}}/{{variant}}/T{{T}}/{{split}}-seed{{seed}}.log",
    wildcard_constraints:
        task="|".join(rnngrad_tasks.TASKS),
        split="train|test",
        T=r"\d+(-\d+)?",
        seed=r"\d+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        n=lambda wc: config["data"][f"n_{wc.split}"],
        T=lambda wc: wc.T.split("-")[-1],
        min_T=lambda wc: f"--min-T {wc.T.split('-')[0]}" if "-" in wc.T else "",
        task_params=lambda wc: [
            f"--param {name}={value}"
            for name, value in rnngrad_tasks.task_params(
                wc.task, config["tasks"][wc.task]
            ).items()
        ],
    shell:
        "python -m rnngrad generate --task {wildcards.task} --variant {wildcards.variant} --T {params.T}"
        " {params.min_T} --n {params.n} --seed {wildcards.seed} {params.task_params} --out {output.npz}"
        " > {log} 2>&1"
