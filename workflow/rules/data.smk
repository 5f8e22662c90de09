# Datasets: one .npz (+ .json sidecar) per (task, variant, T, split, seed), under the config's own root.


rule generate:
    output:
        npz=f"{RESULTS}/data/{{task}}/{{variant}}/T{{T}}/{{split}}-seed{{seed}}.npz",
        meta=f"{RESULTS}/data/{{task}}/{{variant}}/T{{T}}/{{split}}-seed{{seed}}.json",
    log:
        f"logs/{NAME}/data/{{task}}/{{variant}}/T{{T}}/{{split}}-seed{{seed}}.log",
    wildcard_constraints:
        task="copy|adding",
        split="train|test",
        T=r"\d+",
        seed=r"\d+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        n=lambda wc: config["data"][f"n_{wc.split}"],
        copy_len=config["tasks"]["copy"]["copy_len"],
    shell:
        "python -m rnngrad generate --task {wildcards.task} --variant {wildcards.variant} --T {wildcards.T}"
        " --n {params.n} --seed {wildcards.seed} --copy-len {params.copy_len} --out {output.npz}"
        " > {log} 2>&1"
