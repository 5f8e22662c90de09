# Two commands for a fresh machine with Python 3.11: `make figures` and `make test`.
# Both build the virtualenv in .venv/ from pinned files when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
export PATH := $(abspath $(BIN)):$(PATH)  # rules call the `rnngrad` CLI of this venv

.PHONY: figures test report dryrun paper-tiny paper-cost reproduce reproduce-long reproduce-cost

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,slurm]'
	touch $@

figures: $(VENV)/.installed  ## run the default pipeline: datasets, training, tables, figures/
	$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES)

report: figures  ## one self-contained HTML report of every figure with its caption
	$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES) --report report.html

test: $(VENV)/.installed  ## the whole test suite, linters included
	$(BIN)/pytest -q

dryrun: $(VENV)/.installed
	$(BIN)/snakemake --profile workflow/profiles/default -n

paper-tiny: $(VENV)/.installed  ## the paper grid's every experiment, run and rule at tiny sizes (2 steps), end to end
	$(BIN)/python -m rnngrad miniature config/paper.yaml --out results/paper-tiny.yaml
	$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES) --configfile results/paper-tiny.yaml

paper-cost: $(VENV)/.installed  ## the paper grid's CPU-hours and longest job, from event costs timed on this machine
	$(BIN)/python -m rnngrad cost config/paper.yaml

REPRODUCTIONS := $(filter-out config/reproduce/published.yaml,$(wildcard config/reproduce/*.yaml))
reproduce: $(VENV)/.installed  ## every reproduction at its reduced budget: verdicts and figures in figures/reproduce-*/
	for config in $(REPRODUCTIONS); do \
		$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES) --configfile $$config || exit 1; \
	done

reproduce-long: $(VENV)/.installed  ## every reproduction's long tier (the papers' shortest lengths): figures/reproduce-*-long/
	mkdir -p results/tiers
	for config in $(REPRODUCTIONS); do \
		grep -q '^  long:' $$config || { echo "$$config: no long tier yet"; continue; }; \
		tier=results/tiers/$$(basename $$config .yaml)-long.yaml; \
		$(BIN)/python -m rnngrad tier $$config long --out $$tier || exit 1; \
		$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES) --configfile $$tier || exit 1; \
	done

reproduce-cost: $(VENV)/.installed  ## each reproduction's paper tier costed (rnngrad cost) for the reports' ladders
	mkdir -p results/tiers
	for config in $(REPRODUCTIONS); do \
		name=$$(basename $$config .yaml); \
		$(BIN)/python -m rnngrad tier $$config paper --out results/tiers/$$name-paper.yaml || exit 1; \
		$(BIN)/python -m rnngrad cost results/tiers/$$name-paper.yaml > figures/reproduce-$$name/paper-cost.md || exit 1; \
	done
