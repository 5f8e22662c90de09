# Reproductions (config/reproduce/): the config's published claims scored on its experiments' tables, one row a
# claim with its verdict (rnngrad.reproduce). The report goes beside the results and beside the committed figures,
# with its budget ladder: the verdicts of the config's other tiers (rnngrad tier), read from their committed
# verdicts.json where those tiers have run.
REPRODUCE_TIER = config["reproduce"].get("tier", "reduced")
OTHER_TIERS = {
    tier: f"{folder}/verdicts.json"
    for tier, folder in rnngrad_config.tier_figures(config).items()
    if tier != REPRODUCE_TIER and Path(f"{folder}/verdicts.json").is_file()
}
# `rnngrad cost` on the paper tier (make reproduce-cost), kept beside the reduced tier's figures
PAPER_COST = [
    path
    for path in [f"{rnngrad_config.tier_figures(config)['reduced']}/paper-cost.md"]
    if Path(path).is_file()
]


rule reproduction:
    input:
        published=config["reproduce"]["published"],
        code="src/rnngrad/reproduce.py",
        tables=[
            f"{RESULTS}/tables/{experiment}/{table}.parquet"
            for experiment in sorted(set(config["reproduce"]["claims"].values()))
            for table in rnngrad_contract.TABLES
        ],
        other_tiers=list(OTHER_TIERS.values()),
        paper_cost=PAPER_COST,
    output:
        results=f"{RESULTS}/reproduction.md",
        figures=f"{FIGURES_DIR}/reproduction.md",
        verdicts=f"{FIGURES_DIR}/verdicts.json",
        tables=directory(f"{FIGURES_DIR}/tables"),
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
        tier=REPRODUCE_TIER,
        test_sequences=config["data"]["n_test"],
        other_tiers=" ".join(
            f"--tier-verdicts {tier}={path}" for tier, path in OTHER_TIERS.items()
        )
        + "".join(f" --paper-cost {path}" for path in PAPER_COST),
    shell:
        "python -m rnngrad reproduce --published {input.published} --title {params.title}"
        " --success '{params.success}' --out {output.results} --out {output.figures}"
        " --tier {params.tier} --verdicts {output.verdicts} --keep-tables {output.tables}"
        " --test-sequences {params.test_sequences}"
        " {params.other_tiers}"
        " {params.claims} > {log} 2>&1"
